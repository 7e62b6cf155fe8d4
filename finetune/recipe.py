"""The model side of a fine-tune: the card's precision, the base model, LoRA or full
fine-tuning, per backend.

- `unsloth`: Unsloth's `FastLanguageModel` (fused kernels, its own gradient checkpointing);
  `full_finetune` uses Unsloth's full fine-tuning. One CUDA GPU.
- `hf`: transformers + PEFT, the same recipe on plain libraries: any device, and several
  processes under `accelerate launch` (DDP or FSDP).
Both then train with TRL's SFTTrainer (finetune/trainer_setup.py).
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

import torch

from finetune.settings import FinetuneConfig
from utils.chat_templates import family_record
from utils.errors import FinsentError

log = logging.getLogger(__name__)

GIB = 1024**3
# A base this large meets a card this small: load it in 4 bits (LLaMA-3 8B on a 16 GB T4).
FOUR_BIT_MIN_PARAMS = 3e9
FOUR_BIT_MAX_GPU_GIB = 24


@dataclass(frozen=True)
class Device:
    cuda: bool
    name: str = "cpu"
    bf16: bool = False
    memory_gib: float = 0.0

    @classmethod
    def detect(cls) -> "Device":
        if not torch.cuda.is_available():
            return cls(cuda=False)
        props = torch.cuda.get_device_properties(0)
        return cls(cuda=True, name=props.name, bf16=torch.cuda.is_bf16_supported(),
                   memory_gib=props.total_memory / GIB)


@dataclass(frozen=True)
class Precision:
    """Master weights stay fp32 (bf16 weights lose small updates: ../shared/tools/GPU.md);
    the matmuls run in bf16 or fp16 under autocast. A 4-bit base keeps its frozen weights in
    4 bits and trains fp32 LoRA adapters."""

    name: str  # bf16 | fp16 | fp32
    load_in_4bit: bool

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    @property
    def save_dtype(self) -> torch.dtype:
        """The merged 16-bit model's dtype."""
        return torch.float16 if self.name == "fp16" else torch.bfloat16


def choose_precision(cfg: FinetuneConfig, device: Device, n_params: float) -> Precision:
    name = cfg.precision
    if name == "auto":
        name = ("bf16" if device.bf16 else "fp16") if device.cuda else "fp32"
    if name == "bf16" and device.cuda and not device.bf16:
        raise FinsentError(f"finetune.precision: bf16 is not supported on {device.name}; use fp16 or auto")
    if name == "fp16" and not device.cuda:
        raise FinsentError("finetune.precision: fp16 needs a CUDA GPU; use fp32 or bf16 on CPU")
    four_bit = cfg.load_in_4bit
    if four_bit is None:
        four_bit = (device.cuda and n_params >= FOUR_BIT_MIN_PARAMS
                    and device.memory_gib < FOUR_BIT_MAX_GPU_GIB and not cfg.full_finetune)
    if four_bit and not device.cuda:
        raise FinsentError("finetune.load_in_4bit needs a CUDA GPU (bitsandbytes); set it to false on CPU")
    if four_bit and cfg.full_finetune:
        raise FinsentError("finetune.load_in_4bit and full_finetune exclude each other: 4-bit weights cannot be trained")
    return Precision(name=name, load_in_4bit=bool(four_bit))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def uses_fsdp() -> bool:
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true")


UNSLOTH_NEEDS_CUDA = ("--backend unsloth needs a CUDA GPU and none is visible; "
                      "use --backend hf (transformers + PEFT) to train on this machine")


# liger-kernel's version the GPU bundle carries (benchmarks/gpu_carry.sh): its kernels are Triton, so it
# is not in requirements-finetune.txt, which CPU machines install.
LIGER_KERNEL_PIN = "liger-kernel==0.8.5"


def check_backend(cfg: FinetuneConfig, device: Device) -> None:
    """One-line errors for setups a backend cannot run, naming the alternative; before the model loads."""
    check_speed_options(cfg, device)
    if cfg.backend != "unsloth":
        return
    if not device.cuda:
        raise FinsentError(UNSLOTH_NEEDS_CUDA)
    if uses_fsdp():
        raise FinsentError("Unsloth does not support FSDP; use --backend hf with finetune/accelerate/fsdp.yaml")
    if world_size() > 1:
        raise FinsentError(f"--backend unsloth trains on one GPU here ({world_size()} processes were launched); "
                           "use --backend hf with finetune/accelerate/ddp.yaml for several GPUs")


def check_speed_options(cfg: FinetuneConfig, device: Device) -> None:
    """attn_implementation, use_liger_kernel and torch_compile where they cannot run: one line each."""
    import importlib.util

    if cfg.backend == "unsloth":
        # Unsloth patches the model with its own attention, RMSNorm, SwiGLU, RoPE and cross-entropy
        # kernels and compiles what it compiles; transformers' switches would fight its patches.
        for key, value in (("attn_implementation", cfg.attn_implementation), ("use_liger_kernel", cfg.use_liger_kernel),
                           ("torch_compile", cfg.torch_compile)):
            if value:
                unset = "null" if key == "attn_implementation" else "false"
                raise FinsentError(f"finetune.{key}: --backend unsloth brings its own kernels; "
                                   f"set it to {unset}, or use --backend hf")
    if cfg.use_liger_kernel:
        if not device.cuda:
            raise FinsentError("finetune.use_liger_kernel needs a CUDA GPU (liger-kernel's kernels are Triton); "
                               "set it to false on this machine")
        if importlib.util.find_spec("liger_kernel") is None:
            raise FinsentError(f"finetune.use_liger_kernel: liger-kernel is not installed; pip install "
                               f"{LIGER_KERNEL_PIN}, or set it to false")
    if cfg.attn_implementation == "flex_attention" and not device.cuda:
        raise FinsentError("finetune.attn_implementation: flex_attention trains on CUDA only (torch has no CPU "
                           "backward for it); use sdpa or null on this machine")
    if cfg.attn_implementation == "flash_attention_2":
        if not device.cuda:
            raise FinsentError("finetune.attn_implementation: flash_attention_2 needs a CUDA GPU; use sdpa or null")
        if importlib.util.find_spec("flash_attn") is None:
            raise FinsentError("finetune.attn_implementation: flash_attention_2 needs the flash-attn package, which "
                               "is not installed; use flex_attention or sdpa")


def count_params(base_model: str) -> tuple[int, int]:
    """(parameters, parameters in matmuls) of the base model from its config alone (no weights
    read). The input embedding is a lookup, not a matmul; the output head is one, tied or not."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    config = load_base_config(base_model)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    output = model.get_output_embeddings()
    tied = getattr(config.get_text_config(), "tie_word_embeddings", False)
    if tied and output is not None and output.weight is not model.get_input_embeddings().weight:
        total -= output.weight.numel()  # a meta-device model may leave the tie undone
    return total, total - embedding + (embedding if tied else 0)


def load_base_config(base_model: str):
    """The base model's config; a path or hub id that cannot be read is a one-line error."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(base_model)
    except (OSError, ValueError) as exc:
        hint = ("" if os.path.isdir(base_model) else
                " (a hub id needs the network or a copy in the Hugging Face cache; "
                "or run finetune/prepare_base.py and pass its folder)")
        raise FinsentError(f"cannot load the base model '{base_model}': {str(exc).splitlines()[0]}{hint}") from None


def prepare_tokenizer(tokenizer, family: str):
    """The family's chat template (saved with the model, so the GGUF carries it) and a pad token."""
    tokenizer.chat_template = family_record(family).jinja
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def chosen_backend(argv: list[str], config_from_args: Callable[[Any], Any]) -> str | None:
    """The backend train.py will run with these arguments (flag, `--set`, config file), read before
    train.py parses them with its `config_from_args` (finsent.cli's: the stage does not load the
    whole-file config itself); None where they do not parse (train.py then reports them in one line)."""
    import argparse
    import contextlib
    import io

    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    parser.add_argument("--config")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--backend")
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args, _ = parser.parse_known_args(argv)
            return args.backend or config_from_args(args).finetune.backend
    except (Exception, SystemExit):
        return None


def exit_if_unsloth_without_cuda(argv: list[str], config_from_args: Callable[[Any], Any]) -> None:
    """Before train.py's imports (tens of seconds): Unsloth chosen and no CUDA GPU is one error line."""
    if chosen_backend(argv, config_from_args) == "unsloth" and not torch.cuda.is_available():
        print(f"error: {UNSLOTH_NEEDS_CUDA}", file=sys.stderr)
        raise SystemExit(2)


def import_unsloth_if_chosen(argv: list[str], config_from_args: Callable[[Any], Any]) -> bool:
    """Import Unsloth before transformers, peft and trl when this run will train with it on a GPU: it
    patches them at import (and warns that a later import may run slower or use more memory). The hf
    backend is never patched."""
    import importlib.util

    if chosen_backend(argv, config_from_args) != "unsloth" or not torch.cuda.is_available() or importlib.util.find_spec("unsloth") is None:
        return False
    try:
        import unsloth  # noqa: F401
    except Exception:  # a broken install: load_model reports it in one line, with what to do
        return False
    return True


def load_model(cfg: FinetuneConfig, precision: Precision):
    """(model ready to train, tokenizer) for the configured backend."""
    if cfg.backend == "unsloth":
        model, tokenizer = _load_unsloth(cfg, precision)
    else:
        model, tokenizer = _load_hf(cfg, precision)
    return model, prepare_tokenizer(tokenizer, cfg.family)


def _load_unsloth(cfg: FinetuneConfig, precision: Precision):
    try:
        from unsloth import FastLanguageModel
    except ImportError as exc:
        raise FinsentError(f"--backend unsloth: unsloth is not importable ({exc}); "
                           "pip install unsloth, or use --backend hf") from None
    # LoRA: Unsloth keeps the frozen base in 16 bits and the adapters in fp32. Full fine-tune:
    # fp32 master weights under bf16/fp16 autocast (bf16 weights lose small updates).
    dtype = torch.float32 if cfg.full_finetune else precision.autocast_dtype
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=cfg.base_model, max_seq_length=cfg.max_seq_length, dtype=dtype,
        load_in_4bit=precision.load_in_4bit, full_finetuning=cfg.full_finetune)
    if cfg.full_finetune:
        # Unsloth's trainer reads this: "bfloat16" would mean bf16 weights without autocast,
        # "float32" keeps fp32 weights under the trainer's bf16/fp16 autocast.
        os.environ["UNSLOTH_MIXED_PRECISION"] = "float32"
        if next(model.parameters()).dtype != torch.float32:
            model = model.float()
            model.config.torch_dtype = torch.float32
    else:
        model = FastLanguageModel.get_peft_model(
            model, r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
            target_modules=cfg.target_modules, bias="none", random_state=cfg.seed,
            use_gradient_checkpointing="unsloth" if cfg.gradient_checkpointing else False)
    return model, tokenizer


def _load_hf(cfg: FinetuneConfig, precision: Precision):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    load_base_config(cfg.base_model)
    # Trained weights stay fp32 (bf16 weights lose small updates). LoRA's frozen base can sit in
    # the autocast dtype: PEFT keeps the adapters themselves in fp32 (autocast_adapter_dtype).
    frozen_dtype = torch.float32 if cfg.full_finetune else (precision.autocast_dtype or torch.float32)
    kwargs: dict = {"dtype": frozen_dtype}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    if precision.load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=precision.autocast_dtype or torch.float16)
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    tokenizer = AutoTokenizer.from_pretrained(cfg.base_model)
    model = AutoModelForCausalLM.from_pretrained(cfg.base_model, **kwargs)
    if cfg.full_finetune:
        return model, tokenizer
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if precision.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=_present_modules(model, cfg.target_modules), bias="none",
                      task_type="CAUSAL_LM")
    return get_peft_model(model, lora), tokenizer


def _present_modules(model, wanted: list[str]) -> list[str]:
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    present = [module for module in wanted if module in names]
    if not present:
        raise FinsentError(f"finetune.target_modules: none of {wanted} is a module of this model")
    return present


def flops_per_token(n_params: int, full_finetune: bool) -> float:
    """Training FLOPs per token: forward 2N + backward 4N for a full fine-tune; LoRA skips the
    frozen weights' gradients (forward 2N + activation gradients 2N). Attention and gradient
    checkpointing's recomputation are left out, as MFU conventionally does."""
    return (6 if full_finetune else 4) * n_params


# Dense peak TFLOP/s per GPU at 16-bit (bf16, or fp16 without bf16), from the vendors' sheets.
PEAK_TFLOPS = {"H200": 989, "H100 PCIe": 756, "H100": 989, "A100": 312, "L40S": 362, "L4": 121,
               "A10G": 125, "A10": 125, "RTX 4090": 165, "RTX 3090": 71, "V100": 125, "T4": 65}


def peak_flops(device: Device, precision: Precision) -> float | None:
    """The card's peak 16-bit FLOP/s, or None (CPU, fp32, an unknown card): no MFU then."""
    if not device.cuda or precision.autocast_dtype is None:
        return None
    for name, tflops in PEAK_TFLOPS.items():
        if name in device.name:
            return tflops * 1e12
    return None
