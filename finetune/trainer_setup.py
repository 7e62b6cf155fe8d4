"""TRL's SFTTrainer set up from the config, the throughput/MFU callback and what a run saves into
its output folder (finetune.run_layout)."""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from finetune.recipe import Precision
from finetune.run_layout import OutputLayout
from finetune.settings import FinetuneConfig
from utils.io import atomic_dir, atomic_write_json

log = logging.getLogger(__name__)


class ThroughputCallback(TrainerCallback):
    """Logs training tokens/s (all processes together, non-padding tokens, optimizer steps only:
    evaluation and checkpointing excluded), MFU and peak GPU memory at every logging step, into
    the log and `throughput.jsonl`."""

    def __init__(self, flops_per_token: float, peak_flops_total: float | None, log_path: Path):
        self.flops_per_token = flops_per_token
        self.peak_flops_total = peak_flops_total
        self.log_path = log_path
        self.train_seconds = 0.0
        self.tokens = 0
        self._step_start = 0.0
        self._tokens_at_start = 0
        self._last = (0.0, 0)

    @staticmethod
    def _sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_train_begin(self, args, state, control, **kwargs):
        self._tokens_at_start = state.num_input_tokens_seen
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    def on_step_begin(self, args, state, control, **kwargs):
        self._sync()
        self._step_start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self._sync()
        self.train_seconds += time.perf_counter() - self._step_start
        self.tokens = state.num_input_tokens_seen - self._tokens_at_start

    def figures(self, seconds: float, tokens: int) -> dict:
        tokens_per_s = tokens / seconds if seconds > 0 else 0.0
        mfu = (tokens_per_s * self.flops_per_token / self.peak_flops_total) if self.peak_flops_total else None
        peak = torch.cuda.max_memory_allocated() / 1024**3 if torch.cuda.is_available() else None
        return {"tokens": tokens, "train_seconds": round(seconds, 3), "tokens_per_s": round(tokens_per_s, 1),
                "mfu": None if mfu is None else round(mfu, 4), "peak_gib": None if peak is None else round(peak, 2)}

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs or not state.is_world_process_zero:
            return
        last_seconds, last_tokens = self._last
        interval = self.figures(self.train_seconds - last_seconds, self.tokens - last_tokens)
        self._last = (self.train_seconds, self.tokens)
        record = {"step": state.global_step, "loss": logs["loss"], **interval}
        log.info("step %d: loss %.4f, %.0f tokens/s, MFU %s, peak %s GiB", state.global_step, logs["loss"],
                 interval["tokens_per_s"], "n/a" if interval["mfu"] is None else f"{interval['mfu']:.1%}",
                 interval["peak_gib"])
        with self.log_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def summary(self, accelerator) -> dict:
        """Whole-run figures; every process must call it (it gathers each GPU's peak memory)."""
        figures = self.figures(self.train_seconds, self.tokens)
        if torch.cuda.is_available():
            peak = torch.tensor([torch.cuda.max_memory_allocated() / 1024**3], device=accelerator.device)
            figures["peak_gib_per_gpu"] = [round(v, 2) for v in accelerator.gather(peak).tolist()]
        return figures


def fsdp_checkpoints_activations() -> bool:
    return os.environ.get("FSDP_ACTIVATION_CHECKPOINTING", "false").lower() in ("1", "true")


def build_trainer(cfg: FinetuneConfig, model, tokenizer, train_dataset, eval_dataset, precision: Precision,
                  layout: OutputLayout, callback: ThroughputCallback, use_cpu: bool):
    from trl import SFTConfig, SFTTrainer

    # TRL refuses max_length under padding_free without packing (it would not enforce it): the rows are
    # cut here instead, keeping their start as TRL cuts them.
    cut_here = cfg.padding_free and not cfg.packing
    if cut_here:
        train_dataset = rows_cut_to(train_dataset, cfg.max_seq_length)
        eval_dataset = rows_cut_to(eval_dataset, cfg.max_seq_length) if eval_dataset is not None else None
    args = SFTConfig(
        output_dir=str(layout.checkpoints),
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler, warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay, optim=cfg.optimizer, seed=cfg.seed, data_seed=cfg.seed,
        bf16=precision.name == "bf16", fp16=precision.name == "fp16", use_cpu=use_cpu,
        # Unsloth brings its own (offloaded) gradient checkpointing, set in recipe.py; under FSDP
        # with activation checkpointing (fsdp.yaml) FSDP's own does the job.
        gradient_checkpointing=cfg.gradient_checkpointing and cfg.backend == "hf" and not fsdp_checkpoints_activations(),
        gradient_checkpointing_kwargs={"use_reentrant": False},
        max_length=None if cut_here else cfg.max_seq_length, packing=cfg.packing, padding_free=cfg.padding_free,
        use_liger_kernel=cfg.use_liger_kernel, torch_compile=cfg.torch_compile,
        logging_steps=cfg.logging_steps, logging_first_step=True,
        eval_strategy="steps" if eval_dataset is not None else "no", eval_steps=cfg.eval_steps,
        save_strategy="steps" if cfg.save_steps else "no", save_steps=cfg.save_steps or 500,
        save_total_limit=cfg.save_total_limit,
        include_num_input_tokens_seen="non_padding", report_to=cfg.report_to,
        ddp_find_unused_parameters=False,
    )
    return SFTTrainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                      processing_class=tokenizer, callbacks=[callback])


def rows_cut_to(dataset, max_length: int):
    """Tokenized rows (input_ids, labels) cut to their first max_length tokens."""
    return dataset.map(lambda row: {key: row[key][:max_length] for key in ("input_ids", "labels")})


def save_outputs(trainer, cfg: FinetuneConfig, tokenizer, precision: Precision, layout: OutputLayout) -> None:
    """The LoRA adapter (LoRA runs) and a merged 16-bit model with the tokenizer and chat template."""
    if cfg.backend == "unsloth" and not cfg.full_finetune:
        # Unsloth's own merge: it also dequantizes a 4-bit base to merge into 16 bits.
        model = trainer.model
        model.save_pretrained(str(layout.adapter))
        tokenizer.save_pretrained(str(layout.adapter))
        with atomic_dir(layout.merged) as partial:
            model.save_pretrained_merged(str(partial), tokenizer, save_method="merged_16bit")
            _add_sentencepiece(partial, cfg.base_model)
        return
    # The adapter (or the full fp32 weights) through the trainer, which gathers them under
    # FSDP/DDP; then the main process merges on the CPU in 16 bits.
    trained = layout.full_weights if cfg.full_finetune else layout.adapter
    trainer.save_model(str(trained))
    trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(str(trained))
        merge_to_16bit(trained, layout.merged, precision.save_dtype, is_adapter=not cfg.full_finetune,
                       base_model=cfg.base_model)
        if cfg.full_finetune:
            shutil.rmtree(trained)
    trainer.accelerator.wait_for_everyone()


def merge_to_16bit(trained: Path, target: Path, dtype: torch.dtype, is_adapter: bool, base_model: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if is_adapter:
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(str(trained), dtype=dtype).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(str(trained), dtype=dtype)
    with atomic_dir(target) as partial:  # a crash before the end leaves the previous folder whole
        model.save_pretrained(str(partial))
        AutoTokenizer.from_pretrained(str(trained)).save_pretrained(str(partial))
        _add_sentencepiece(partial, base_model)
    log.info("merged %s model saved to %s", str(dtype).removeprefix("torch."), target)


def _add_sentencepiece(folder: Path, base_model: str) -> None:
    """The base folder's SentencePiece `tokenizer.model` (which llama.cpp's converter reads) comes
    along when the save did not write one."""
    sentencepiece = Path(base_model) / "tokenizer.model"
    if sentencepiece.is_file() and not (folder / "tokenizer.model").exists():
        shutil.copyfile(sentencepiece, folder / "tokenizer.model")


# The settings a run was made with (config and flags), recorded for its model card (finetune/publish.py).
RECIPE_KEYS = {"train_file", "validation_file", "full_finetune", "lora_r", "lora_alpha", "lora_dropout", "epochs",
               "max_steps", "learning_rate", "lr_scheduler", "warmup_ratio", "weight_decay", "batch_size",
               "gradient_accumulation_steps", "max_seq_length", "packing", "padding_free", "seed"}


def write_summary(layout: OutputLayout, cfg: FinetuneConfig, precision: Precision, device_name: str,
                  processes: int, train_metrics: dict, eval_metrics: dict, throughput: dict) -> dict:
    summary = {
        "backend": cfg.backend, "base_model": cfg.base_model, "family": cfg.family,
        "full_finetune": cfg.full_finetune, "packing": cfg.packing, "padding_free": cfg.padding_free,
        "attn_implementation": cfg.attn_implementation, "use_liger_kernel": cfg.use_liger_kernel,
        "torch_compile": cfg.torch_compile, "precision": precision.name,
        "load_in_4bit": precision.load_in_4bit, "device": device_name, "processes": processes,
        "train_loss": train_metrics.get("train_loss"), "eval_loss": eval_metrics.get("eval_loss"),
        **throughput, "recipe": cfg.model_dump(mode="json", include=RECIPE_KEYS),
    }
    atomic_write_json(layout.summary, summary)
    return summary
