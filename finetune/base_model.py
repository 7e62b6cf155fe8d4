"""A GGUF model as a Hugging Face folder: dequantized by transformers, rebuilt from config +
state dict (a model loaded from GGUF keeps a quantizer that save_pretrained refuses)."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import torch

from finetune.recipe import prepare_tokenizer
from utils.errors import FinsentError

log = logging.getLogger(__name__)


def gguf_to_hf_folder(gguf: Path, output: Path, family: str, dtype: str = "float32") -> str:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gguf)
    if not gguf.is_file():
        raise FinsentError(f"GGUF model not found: {gguf}")
    log.info("reading and dequantizing %s (a minute or two for 270M parameters)", gguf)
    try:
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except (OSError, ValueError, KeyError) as exc:
        raise FinsentError(f"transformers cannot read {gguf}: {str(exc).splitlines()[0]}") from None
    # transformers' GGUF tokenizer forgets the GGUF's add_bos_token; Gemma without <bos> is noise.
    tokenizer.add_bos_token = bool(_gguf_value(gguf, "tokenizer.ggml.add_bos_token", False))
    config = type(loaded.config).from_dict(loaded.config.to_dict())
    for attribute in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attribute):
            delattr(config, attribute)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.to(getattr(torch, dtype))
    model.generation_config = loaded.generation_config
    partial = output.with_name(output.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    model.save_pretrained(partial)
    prepare_tokenizer(tokenizer, family).save_pretrained(partial)
    write_sentencepiece_model(gguf, partial / "tokenizer.model")
    if output.exists():
        shutil.rmtree(output)
    partial.rename(output)
    n_params = sum(p.numel() for p in model.parameters())
    return f"{config.model_type}, {n_params / 1e6:.0f}M parameters, {dtype}, chat template {family}"


def _gguf_value(gguf: Path, key: str, default=None):
    from gguf import GGUFReader

    fields = GGUFReader(gguf).fields
    return fields[key].contents() if key in fields else default


def write_sentencepiece_model(gguf: Path, target: Path) -> bool:
    """The GGUF's SentencePiece vocab (pieces, scores, types) as `tokenizer.model`, which llama.cpp's
    converter needs for such families (Gemma, Llama 2, Mistral): transformers saves only its fast
    tokenizer.json, whose pre-tokenizer the converter does not recognise. No-op for BPE vocabs."""
    from gguf import GGUFReader
    from sentencepiece import sentencepiece_model_pb2 as spm

    fields = GGUFReader(gguf).fields

    def value(key: str, default=None):
        return fields[key].contents() if key in fields else default

    if value("tokenizer.ggml.model") != "llama":
        return False
    model = spm.ModelProto()
    model.trainer_spec.model_type = spm.TrainerSpec.BPE
    model.trainer_spec.byte_fallback = True
    model.trainer_spec.unk_id = value("tokenizer.ggml.unknown_token_id", 0)
    model.trainer_spec.bos_id = value("tokenizer.ggml.bos_token_id", -1)
    model.trainer_spec.eos_id = value("tokenizer.ggml.eos_token_id", -1)
    model.trainer_spec.pad_id = value("tokenizer.ggml.padding_token_id", -1)
    model.normalizer_spec.name = "identity"
    model.normalizer_spec.add_dummy_prefix = bool(value("tokenizer.ggml.add_space_prefix", True))
    model.normalizer_spec.remove_extra_whitespaces = False
    model.normalizer_spec.escape_whitespaces = True
    # GGUF token types use SentencePiece's numbering (1 normal, 2 unknown, 3 control, 4 user, 5 unused, 6 byte).
    for piece, score, kind in zip(value("tokenizer.ggml.tokens"), value("tokenizer.ggml.scores"),
                                  value("tokenizer.ggml.token_type"), strict=True):
        entry = model.pieces.add()
        entry.piece, entry.score, entry.type = piece, score, kind
    model.trainer_spec.vocab_size = len(model.pieces)
    target.write_bytes(model.SerializeToString())
    return True
