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
    if output.exists():
        shutil.rmtree(output)
    partial.rename(output)
    n_params = sum(p.numel() for p in model.parameters())
    return f"{config.model_type}, {n_params / 1e6:.0f}M parameters, {dtype}, chat template {family}"
