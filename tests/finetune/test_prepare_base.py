"""prepare_base.py on the real Gemma 3 270M GGUF: a normal HF folder that transformers loads and
that answers like the GGUF it came from."""
from __future__ import annotations

import pytest

from tests.conftest import run_script
from tests.finetune_fixtures import llama_cpp_vendor, load_family_tokenizer, phrasebank_rows  # noqa: F401
from utils.chat_templates import family_record
from utils.errors import FinsentError


@pytest.mark.slow
def test_gemma_gguf_becomes_a_loadable_hf_folder(tmp_path, shared_data):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    output = tmp_path / "gemma"
    result = run_script("finetune/prepare_base.py", "--output", output, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "268M parameters" in result.stdout
    assert "quantization_config" not in (output / "config.json").read_text()

    model = AutoModelForCausalLM.from_pretrained(output)
    tokenizer = AutoTokenizer.from_pretrained(output)
    assert tokenizer.chat_template == family_record("gemma-3").jinja
    assert sum(p.numel() for p in model.parameters()) == 268_098_176
    # A pretrained model, not noise: real financial sentences (after the <bos> the tokenizer must
    # add) cost far fewer nats per token than a uniform guess over 262,144 tokens (12.5).
    sentences = [text for text, _ in phrasebank_rows(shared_data, 3, offset=100)]
    with torch.no_grad():
        losses = [model(**(batch := tokenizer(text, return_tensors="pt")), labels=batch["input_ids"]).loss.item()
                  for text in sentences]
    assert tokenizer("Profit rose.")["input_ids"][0] == tokenizer.bos_token_id
    assert max(losses) < 4.0, losses

    again = run_script("finetune/prepare_base.py", "--output", output)
    assert again.returncode == 2 and "exists" in again.stderr and "--overwrite" in again.stderr


def test_a_tokenizer_that_splits_text_unlike_llama_cpp_is_refused(llama_cpp_vendor):  # noqa: F811
    # The Gemma GGUF's own tokenizer agrees with llama.cpp; the Llama-3 one, standing in for a wrong
    # conversion (transformers 5.17 split Gemma's text into characters), is refused by name.
    from finetune.base_model import check_tokenizer_matches_llama_cpp
    from utils.engine import default_gguf_path

    gguf = default_gguf_path()
    check_tokenizer_matches_llama_cpp(load_family_tokenizer("gemma-3", llama_cpp_vendor), gguf, "gemma-3")
    with pytest.raises(FinsentError, match=r"splits text unlike llama.cpp \(from token 0: .*\): a model trained on it"):
        check_tokenizer_matches_llama_cpp(load_family_tokenizer("llama-3", llama_cpp_vendor), gguf, "gemma-3")


@pytest.mark.parametrize("family", ["gemma-3", "phi-3", "mistral"])
def test_tokenizer_model_from_a_gguf_loads_in_sentencepiece(family, tmp_path, llama_cpp_vendor):  # noqa: F811
    # sentencepiece refuses a model with no UNKNOWN piece (0.2.2: Gemma's <unk> typed CONTROL) or with
    # several (Phi-3's [PAD…] fillers); 0.1.99, 0.2.0, 0.2.2 and 0.2.3 load these (checked in venvs).
    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2 as spm

    from finetune.base_model import write_sentencepiece_model
    from finetune.random_models import vocab_gguf

    path = tmp_path / "tokenizer.model"
    assert write_sentencepiece_model(vocab_gguf(family, llama_cpp_vendor), path)
    processor = sentencepiece.SentencePieceProcessor(model_file=str(path))
    assert processor.IsUnknown(processor.unk_id()) and processor.id_to_piece(processor.unk_id()) == "<unk>"
    model = spm.ModelProto()
    model.ParseFromString(path.read_bytes())
    assert [p.piece for p in model.pieces if p.type == spm.ModelProto.SentencePiece.UNKNOWN] == ["<unk>"]
    assert processor.encode("Operating profit rose", out_type=str)[-1] == "▁rose"
