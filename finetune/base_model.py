"""A GGUF model as a Hugging Face folder: dequantized by transformers, rebuilt from config +
state dict (a model loaded from GGUF keeps a quantizer that save_pretrained refuses)."""
from __future__ import annotations

import logging
import struct
from pathlib import Path

import torch

from finetune.recipe import prepare_tokenizer
from finetune.tokenizer_check import TOKENIZER_PROBES, first_difference, remedy
from utils.chat_templates import family_record
from utils.errors import FinsentError
from utils.io import atomic_dir, atomic_path

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
    except (OSError, ValueError, KeyError, struct.error) as exc:  # struct.error: a file cut short
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
    with atomic_dir(output) as partial:  # a refused tokenizer or a crash leaves the previous folder whole
        model.save_pretrained(partial)
        prepare_tokenizer(tokenizer, family).save_pretrained(partial)
        write_sentencepiece_model(gguf, partial / "tokenizer.model")
        check_tokenizer_matches_llama_cpp(AutoTokenizer.from_pretrained(partial), gguf, family)
    n_params = sum(p.numel() for p in model.parameters())
    return f"{config.model_type}, {n_params / 1e6:.0f}M parameters, {dtype}, chat template {family}"


def check_tokenizer_matches_llama_cpp(tokenizer, gguf: Path, family: str) -> None:
    """A one-line error unless `tokenizer` gives llama.cpp's token ids for TOKENIZER_PROBES.

    transformers rebuilds a GGUF's tokenizer itself, and has got it wrong (5.17 split a
    saved-and-reloaded Gemma tokenizer into single characters). A model fine-tuned on such ids
    still scores well inside transformers, then answers in garbage once llama.cpp serves its GGUF,
    so the folder is refused before any GPU time is spent on it."""
    import httpx

    from utils.engine import EmbeddedEngine, EngineSettings

    row = [{"role": "system", "content": "You are a financial sentiment analyst."},
           {"role": "user", "content": TOKENIZER_PROBES[0]},
           {"role": "assistant", "content": '{"reasoning": "Profit rose.", "sentiment": 0.8, "confidence": 0.9}'}]
    texts = [*TOKENIZER_PROBES, tokenizer.apply_chat_template(row, chat_template=family_record(family).jinja, tokenize=False)]
    with EmbeddedEngine(EngineSettings(gguf_path=gguf, n_parallel=1, n_ctx=1024)) as engine:
        url = f"http://127.0.0.1:{engine.port}/tokenize"
        for text in texts:
            ours = tokenizer(text, add_special_tokens=False)["input_ids"]
            reply = httpx.post(url, json={"content": text, "add_special": False, "parse_special": True}, timeout=30)
            diff = first_difference(tokenizer, ours, reply.raise_for_status().json()["tokens"])
            if diff is not None:
                at, mine, theirs = diff
                raise FinsentError(
                    f"the tokenizer transformers built from {gguf.name} splits text unlike llama.cpp (from token "
                    f"{at}: {mine} vs {theirs}): a model trained on it answers in garbage once served from GGUF; "
                    f"{remedy(mine, theirs, 'the output folder')}")
    log.info("tokenizer checked against llama.cpp on %d texts", len(texts))


def _gguf_value(gguf: Path, key: str, default=None):
    from gguf import GGUFReader

    fields = GGUFReader(gguf).fields
    return fields[key].contents() if key in fields else default


def write_sentencepiece_model(gguf: Path, target: Path) -> bool:
    """The GGUF's SentencePiece vocab (pieces, scores, types) as `tokenizer.model`, which llama.cpp's
    converter needs for such families (Gemma, Mistral, Phi-3): transformers saves only its fast
    tokenizer.json, whose pre-tokenizer the converter does not recognise. No-op for BPE vocabs.

    SentencePiece (0.1.99 to 0.2.3) accepts exactly one UNKNOWN piece, the unk id's: GGUFs type
    other pieces UNKNOWN too (Phi-3's [PAD…] fillers) and may type <unk> CONTROL (Gemma), so those
    become UNUSED and UNKNOWN here, which is what llama.cpp's converter writes back for them."""
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
    unk_id = value("tokenizer.ggml.unknown_token_id", 0)
    model.trainer_spec.unk_id = unk_id
    model.trainer_spec.bos_id = value("tokenizer.ggml.bos_token_id", -1)
    model.trainer_spec.eos_id = value("tokenizer.ggml.eos_token_id", -1)
    model.trainer_spec.pad_id = value("tokenizer.ggml.padding_token_id", -1)
    model.normalizer_spec.name = "identity"
    model.normalizer_spec.add_dummy_prefix = bool(value("tokenizer.ggml.add_space_prefix", True))
    model.normalizer_spec.remove_extra_whitespaces = False
    model.normalizer_spec.escape_whitespaces = True
    # GGUF token types use SentencePiece's numbering (1 normal, 2 unknown, 3 control, 4 user, 5 unused, 6 byte).
    unknown, unused = spm.ModelProto.SentencePiece.UNKNOWN, spm.ModelProto.SentencePiece.UNUSED
    for index, (piece, score, kind) in enumerate(zip(value("tokenizer.ggml.tokens"), value("tokenizer.ggml.scores"),
                                                     value("tokenizer.ggml.token_type"), strict=True)):
        entry = model.pieces.add()
        entry.piece, entry.score = piece, score
        entry.type = unknown if index == unk_id else unused if kind == unknown else kind
    model.trainer_spec.vocab_size = len(model.pieces)
    with atomic_path(target) as partial:
        partial.write_bytes(model.SerializeToString())
    return True
