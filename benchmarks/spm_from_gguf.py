"""Write a SentencePiece `tokenizer.model` from a GGUF's own vocabulary (tokens, scores, types).

llama.cpp's converter reads a Gemma tokenizer only from `tokenizer.model`; a folder made from a
GGUF (finetune/prepare_base.py) has `tokenizer.json` alone, and the converter then fails with
"BPE pre-tokenizer was not recognized". The GGUF's `llama` (SentencePiece) vocabulary holds
everything the model file needs: GGUF token types are SentencePiece's piece types.

  python benchmarks/spm_from_gguf.py BASE.gguf MODEL_DIR/tokenizer.model
"""
from __future__ import annotations

import sys
from pathlib import Path


def spm_from_gguf(gguf_path: Path, target: Path) -> int:
    import gguf
    from sentencepiece import SentencePieceProcessor
    from sentencepiece import sentencepiece_model_pb2 as spm

    reader = gguf.GGUFReader(str(gguf_path))
    field = reader.fields

    def scalar(name: str):
        return field[name].contents()

    if scalar("tokenizer.ggml.model") != "llama":
        raise SystemExit(f"error: {gguf_path}: vocabulary is {scalar('tokenizer.ggml.model')!r}, not SentencePiece")
    tokens = field["tokenizer.ggml.tokens"].contents()
    scores = field["tokenizer.ggml.scores"].contents()
    types = field["tokenizer.ggml.token_type"].contents()
    model = spm.ModelProto()
    for token, score, kind in zip(tokens, scores, types):
        piece = model.pieces.add()
        piece.piece, piece.score, piece.type = token, float(score), int(kind)
    trainer = model.trainer_spec
    trainer.model_type = spm.TrainerSpec.BPE
    trainer.vocab_size = len(tokens)
    trainer.byte_fallback = any(int(k) == 6 for k in types)
    trainer.unk_id = int(scalar("tokenizer.ggml.unknown_token_id"))
    trainer.bos_id = int(scalar("tokenizer.ggml.bos_token_id"))
    trainer.eos_id = int(scalar("tokenizer.ggml.eos_token_id"))
    trainer.pad_id = int(scalar("tokenizer.ggml.padding_token_id"))
    normalizer = model.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = bool(scalar("tokenizer.ggml.add_space_prefix"))
    normalizer.remove_extra_whitespaces = False
    normalizer.escape_whitespaces = True
    target.write_bytes(model.SerializeToString())
    processor = SentencePieceProcessor()
    processor.LoadFromFile(str(target))  # refuses a malformed model
    return processor.vocab_size()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    n = spm_from_gguf(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"{sys.argv[2]}: {n} pieces from {sys.argv[1]}")
