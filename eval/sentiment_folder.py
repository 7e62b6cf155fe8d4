"""Where the sentiments folder keeps each model's answers: one naming rule for the writer
(eval.sentiment_runner), the reader (eval.sentiment_files) and a model's results folder
(eval.backends.ModelSpec.folder).

    <sentiment_save_folder>/<model folder>/<TICKER>_<iteration>.json   (iteration from 0)
    <sentiment_save_folder>/<model folder>/<TICKER>.journal.jsonl      (an unfinished run's answers)
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from utils.errors import FinsentError

FILE_NAME = re.compile(r"^(?P<ticker>.+)_(?P<iteration>\d+)\.json$")


def model_folder_name(model: str | Mapping[str, Any]) -> str:
    """Folder of a `models_to_test` entry: its name (or mapping's `name`, else `model`),
    with ":" replaced by "_" as in the original study."""
    if isinstance(model, Mapping):
        name = model.get("name") or model.get("model")
        if not name:
            raise FinsentError(f"models_to_test entry {dict(model)!r} has neither 'name' nor 'model'")
        model = name
    return str(model).replace(":", "_")


def iteration_file_path(folder: str | Path, model: str | Mapping[str, Any], ticker: str,
                        iteration: int) -> Path:
    """`<folder>/<model folder>/<TICKER>_<iteration>.json`."""
    return Path(folder) / model_folder_name(model) / f"{ticker}_{iteration}.json"


def journal_path(folder: str | Path, model_folder: str, ticker: str) -> Path:
    """The model's answer journal: one JSON line per answer of an unfinished run."""
    return iteration_file_path(folder, model_folder, ticker, 0).with_name(f"{ticker}.journal.jsonl")
