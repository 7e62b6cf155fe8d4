"""The `finetune:` section of config.yaml."""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class FinetuneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    output_dir: Path = Path("outputs/finetune")
    seed: int = 42
