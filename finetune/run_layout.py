"""A fine-tune run's output folder, as train.py writes it and export, the demo and the benchmarks
read it: checkpoints/, adapter/ (LoRA) or full_fp32/, merged/ (16-bit HF folder), gguf/
(<name>-<quant>.gguf), throughput.jsonl, train_summary.json, finished_steps.json (finsent/chain.py's
record of the steps a rerun reuses). Imports no torch."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from utils.errors import FinsentError


def gguf_name(model_name: str, quant: str) -> str:
    return f"{model_name}-{quant}.gguf"


@dataclass(frozen=True)
class OutputLayout:
    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def full_weights(self) -> Path:
        """A full fine-tune's fp32 weights (its adapter/ counterpart)."""
        return self.root / "full_fp32"

    @property
    def merged(self) -> Path:
        return self.root / "merged"

    @property
    def gguf(self) -> Path:
        return self.root / "gguf"

    def gguf_file(self, model_name: str, quant: str) -> Path:
        return self.gguf / gguf_name(model_name, quant)

    @property
    def throughput_log(self) -> Path:
        return self.root / "throughput.jsonl"

    @property
    def summary(self) -> Path:
        return self.root / "train_summary.json"

    @property
    def finished_steps(self) -> Path:
        return self.root / "finished_steps.json"

    def check(self, resume: bool, overwrite: bool) -> Path | None:
        """The checkpoint to resume from (or None); read-only, so every process can ask."""
        if resume and overwrite:
            raise FinsentError("--resume and --overwrite exclude each other")
        exists = self.root.exists() and any(self.root.iterdir())
        if resume:
            from transformers.trainer_utils import get_last_checkpoint  # transformers loads seconds: at use

            last = get_last_checkpoint(str(self.checkpoints)) if self.checkpoints.is_dir() else None
            if last is None:
                raise FinsentError(f"--resume: no checkpoint in {self.checkpoints}")
            return Path(last)
        if exists and not overwrite:
            raise FinsentError(f"output folder {self.root} exists: pass --resume to continue from its last "
                               "checkpoint or --overwrite to start over")
        return None

    def resume_hint(self) -> str:
        """After a Ctrl-C: the checkpoint a rerun with --resume continues from (the saved ones are
        whole: the Trainer writes each in full before the next step)."""
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(str(self.checkpoints)) if self.checkpoints.is_dir() else None
        if last is None:
            return f"no checkpoint saved yet in {self.checkpoints}: rerun with --overwrite to start over"
        return f"rerun with --resume to continue from {last}"

    def clear(self) -> None:
        """--overwrite: start from an empty folder (main process only)."""
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
