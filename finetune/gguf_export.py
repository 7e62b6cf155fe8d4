"""HF folder → GGUF f16 through llama.cpp's own converter, then llama.cpp's quantizer (through
llama-cpp-python) for q8_0 and the k-quants. Both write beside the target and rename at the end."""
from __future__ import annotations

import ctypes
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from finetune.llama_cpp_source import CONVERTER
from finetune.run_layout import OutputLayout
from finetune.settings import QUANTS
from utils.chat_templates import family_of_chat_template
from utils.errors import FinsentError
from utils.io import atomic_path, read_json

log = logging.getLogger(__name__)

FTYPES = {quant: f"LLAMA_FTYPE_MOSTLY_{quant.upper()}" for quant in QUANTS}  # llama_cpp's names


@dataclass(frozen=True)
class TrainedRun:
    """What export needs to know of the run that made a merged folder: its chat family and base."""
    family: str | None
    base_model: str | None
    source: str  # where it was read, for messages

    @classmethod
    def read(cls, model_dir: Path) -> "TrainedRun":
        """From train_summary.json beside the merged folder (train.py writes it), else from the
        chat template saved with the folder's tokenizer."""
        summary = OutputLayout(model_dir.parent).summary
        if summary.is_file():
            record = read_json(summary)
            return cls(record.get("family"), record.get("base_model"), str(summary))
        return cls(family_of_chat_template(_saved_chat_template(model_dir)), None, f"{model_dir}'s chat template")

    def family_for(self, requested: str | None, fallback: str) -> str:
        """The run's family; a requested one that contradicts it is a one-line error naming both."""
        if requested and self.family and requested != self.family:
            raise FinsentError(f"--family {requested} contradicts the run being exported, trained as {self.family} "
                               f"({self.source}); drop --family, or export the {requested} run's merged folder")
        return requested or self.family or fallback


def _saved_chat_template(model_dir: Path) -> str | None:
    """The chat template a tokenizer saved: chat_template.jinja (transformers 5), else in
    tokenizer_config.json."""
    if (model_dir / "chat_template.jinja").is_file():
        return (model_dir / "chat_template.jinja").read_text(encoding="utf-8")
    tokenizer_config = model_dir / "tokenizer_config.json"
    if tokenizer_config.is_file():
        return json.loads(tokenizer_config.read_text(encoding="utf-8")).get("chat_template")
    return None


def convert_to_f16(model_dir: Path, target: Path, llama_cpp: Path) -> Path:
    """Run convert_hf_to_gguf.py (with the sdist's own gguf-py) on `model_dir`."""
    log.info("converting %s to %s", model_dir, target)
    with atomic_path(target) as partial:
        result = subprocess.run([sys.executable, str(llama_cpp / CONVERTER), str(model_dir), "--outfile", str(partial),
                                 "--outtype", "f16"], capture_output=True, text=True,
                                env=converter_env())
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise FinsentError(f"convert_hf_to_gguf.py failed on {model_dir}: {last}")
    return target


def converter_env() -> dict[str, str]:
    """The converter puts the sdist's gguf-py (its matching version) first unless NO_LOCAL_GGUF is set."""
    return {name: value for name, value in os.environ.items() if name != "NO_LOCAL_GGUF"}


def quantize(source: Path, target: Path, quant: str) -> Path:
    """llama.cpp's quantizer: the k-quants pick per-tensor types as llama-quantize does."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise FinsentError(f"llama-cpp-python is needed for the {quant} quantization ({exc}); "
                           "pip install -r requirements-finetune.txt") from None
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, FTYPES[quant])
    params.nthread = os.cpu_count() or 1
    log.info("quantizing %s to %s", source.name, target.name)
    with atomic_path(target) as partial:
        status = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params))
        if status != 0:
            raise FinsentError(f"llama.cpp could not quantize {source} to {quant} (status {status})")
    return target
