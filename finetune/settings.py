"""The `finetune:` section of config.yaml."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# The GGUF quantizations export makes (llama.cpp's LLAMA_FTYPE_MOSTLY_<QUANT>), largest first.
Quant = Literal["f16", "q8_0", "q5_k_m", "q4_k_m"]
QUANTS: tuple[str, ...] = get_args(Quant)
# transformers' attn_implementation values the fine-tune accepts (flash_attention_2 needs the flash-attn package).
AttnImplementation = Literal["sdpa", "flex_attention", "flash_attention_2", "eager"]
ATTN_IMPLEMENTATIONS: tuple[str, ...] = get_args(AttnImplementation)
CPU_EVAL_LIMIT = 32
# Parts of a hub name that say how a checkpoint was packaged, not which model it is.
_PACKAGING_PARTS = {"meta", "instruct", "it", "chat", "hf", "bnb", "4bit", "unsloth"}


def model_name_from_base(base_model: str) -> str:
    """The fine-tune's name from its base: meta-llama/Meta-Llama-3-8B-Instruct → llama-3-8b-finsent,
    models/gemma-3-270m → gemma-3-270m-finsent."""
    parts = [part for part in re.split(r"[-_]", Path(str(base_model).rstrip("/")).name.lower())
             if part and part not in _PACKAGING_PARTS]
    return "-".join([*parts, "finsent"])


class FinetuneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # What to train and on what
    backend: Literal["unsloth", "hf"] = "unsloth"
    base_model: str = "models/gemma-3-270m"  # an HF folder (prepare_base.py makes this one) or a hub id
    family: str = "gemma-3"  # chat format: a key of utils.chat_templates.FAMILIES
    train_file: Path = Path("data/sharegpt/train.jsonl")
    validation_file: Path | None = Path("data/sharegpt/validation.jsonl")
    output_dir: Path = Path("outputs/finetune")
    model_name: str | None = None  # names the GGUF files and the Ollama model; None: from the base model

    # Model setup
    full_finetune: bool = False  # train every weight (small models) instead of LoRA
    load_in_4bit: bool | None = None  # None: 4-bit base when a >3B model meets a <24 GiB GPU
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # auto: bf16 autocast, fp16 on T4, fp32 on CPU
    max_seq_length: int = Field(2048, gt=0)
    gradient_checkpointing: bool = True
    lora_r: int = Field(32, gt=0)
    lora_alpha: int = Field(32, gt=0)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: list(ALL_LINEAR))

    # Optimisation (TRL SFTTrainer)
    epochs: float = Field(3.0, gt=0)
    max_steps: int = -1  # > 0 overrides epochs
    learning_rate: float = Field(2e-4, gt=0)
    lr_scheduler: str = "cosine"
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    batch_size: int = Field(8, gt=0)  # per device
    gradient_accumulation_steps: int = Field(2, gt=0)
    packing: bool = False  # TRL's best-fit packing: rows of max_seq_length, padding-free (below) by itself
    # Each batch flattened into one row, position_ids restarting at every conversation: no padding and no
    # attention across conversations (TRL's padding_free; with packing: false, a batch is batch_size rows).
    padding_free: bool = False
    # transformers' attention kernel under --backend hf; None: the library's default (sdpa). Unsloth picks its own.
    attn_implementation: AttnImplementation | None = None
    use_liger_kernel: bool = False  # liger-kernel's fused Triton kernels (RMSNorm, SwiGLU, RoPE, linear+CE): hf on CUDA
    torch_compile: bool = False  # the Trainer's torch.compile of the model (hf backend)
    optimizer: str = "adamw_torch"  # any transformers optim name, e.g. adamw_8bit with bitsandbytes
    seed: int = 42

    # Logging, evaluation, checkpoints
    logging_steps: int = Field(10, gt=0)
    eval_steps: int = Field(100, gt=0)
    # Validation rows at most (the first ones); None: every row on a GPU, CPU_EVAL_LIMIT on a CPU,
    # where a full validation split takes hours (a smoke run is then minutes).
    eval_limit: int | None = Field(None, gt=0)
    save_steps: int = Field(100, ge=0)  # 0: no checkpoints
    save_total_limit: int = Field(3, gt=0)
    report_to: str = "none"  # "tensorboard", "wandb", ... as transformers accepts
    save_final: bool = True  # write adapter/ and merged/ at the end (false: benchmarks)

    # Export: GGUF quantizations and Ollama Modelfiles
    quants: list[Quant] = Field(default_factory=lambda: list(QUANTS))
    llama_cpp_source: Path | None = None  # llama-cpp-python's sdist (.tar.gz or unpacked); None: find it
    temperature: float = Field(0.2, ge=0)
    num_ctx: int = Field(8192, gt=0)
    hub_private: bool = True  # finetune/publish.py creates a private model repo (--public: not)

    # prepare_base.py: the GGUF base model made an HF folder (None: Gemma 3 270M from PyPI)
    base_gguf: Path | None = None

    @property
    def gguf_model_name(self) -> str:
        return self.model_name or model_name_from_base(self.base_model)
