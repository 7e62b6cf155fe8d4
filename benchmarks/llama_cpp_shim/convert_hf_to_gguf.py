"""llama.cpp's convert_hf_to_gguf.py, with a Gemma 3 model's vocabulary copied from a GGUF.

A Gemma folder made from a GGUF (finetune/prepare_base.py) holds tokenizer.json only; the
converter then takes the BPE path and stops ("BPE pre-tokenizer was not recognized"), and a
tokenizer.model rebuilt from the GGUF's pieces was refused by the GPU machine's sentencepiece
("unk is not defined"). The GGUF's own vocabulary (tokens, scores, types, SentencePiece kind) is
exactly what the converter would write, so this shim writes it and runs the real converter.

finetune/export_gguf.py --llama-cpp-source benchmarks/llama_cpp_shim runs it, with
FINSENT_LLAMA_CPP_REAL = the real converter's folder (holding conversion/ and gguf-py/) and
FINSENT_VOCAB_GGUF = the base model's GGUF. The folder must hold no tokenizer.model.
"""
import os
import runpy
import sys

REAL = os.environ["FINSENT_LLAMA_CPP_REAL"]
sys.path[0:0] = [REAL, os.path.join(REAL, "gguf-py")]

import gguf  # noqa: E402  (the converter's own gguf-py, first on the path)
from conversion import gemma  # noqa: E402

VOCAB = gguf.GGUFReader(os.environ["FINSENT_VOCAB_GGUF"]).fields


def set_vocab(self) -> None:
    writer = self.gguf_writer
    writer.add_tokenizer_model(VOCAB["tokenizer.ggml.model"].contents())
    writer.add_tokenizer_pre("default")
    writer.add_token_list(VOCAB["tokenizer.ggml.tokens"].contents())
    writer.add_token_scores(VOCAB["tokenizer.ggml.scores"].contents())
    writer.add_token_types(VOCAB["tokenizer.ggml.token_type"].contents())
    gguf.SpecialVocab(self.dir_model, n_vocab=len(VOCAB["tokenizer.ggml.tokens"].data)).add_to_gguf(writer)
    writer.add_add_space_prefix(False)


gemma.Gemma3Model.set_vocab = set_vocab
sys.argv[0] = os.path.join(REAL, "convert_hf_to_gguf.py")
runpy.run_path(sys.argv[0], run_name="__main__")
