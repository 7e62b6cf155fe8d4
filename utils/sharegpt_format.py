"""Step 05's ShareGPT split files, the contract between the stages: dataset_builder writes them
(`sharegpt_record`), finetune trains on them and eval scores a model on them (`read_split`).

`<folder>/<split>.jsonl` for each split of SPLITS, one record a line:

    {"conversations": [{"from": "system", "value": <system prompt>},
                       {"from": "human", "value": <text>},
                       {"from": "gpt", "value": <the answer as JSON>}],
     "source": <tweets, financial_phrasebank, news, ...>, "label": <positive, neutral, negative>}
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.errors import FinsentError
from utils.io import json_lines

SPLITS = ("train", "validation", "test")
# A turn's speaker ("from") as a chat role; "user"/"assistant" are accepted as other tools write them.
ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


@dataclass(frozen=True)
class ShareGPTRecord:
    line: int  # 1-based line in its file
    messages: tuple[tuple[str, str], ...]  # (chat role, text), in order
    source: str
    label: str | None

    def first(self, role: str) -> str | None:
        """The text of the first turn of `role` (system, user, assistant), or None."""
        return next((text for turn_role, text in self.messages if turn_role == role), None)


def split_file(folder: str | Path, split: str) -> Path:
    return Path(folder) / f"{split}.jsonl"


def sharegpt_record(system: str, text: str, answer: str, source: str, label: str) -> dict[str, Any]:
    return {"conversations": [{"from": "system", "value": system},
                              {"from": "human", "value": text},
                              {"from": "gpt", "value": answer}],
            "source": source, "label": label}


def is_sharegpt(path: str | Path) -> bool:
    """Whether the file's first line is a ShareGPT record (a JSONL of another kind is not)."""
    with open(path, encoding="utf-8", errors="replace") as handle:  # a binary file is not one: its reader says why
        first = handle.readline()
    try:
        return "conversations" in json.loads(first)
    except (json.JSONDecodeError, TypeError):
        return False


def read_split(path: str | Path) -> list[ShareGPTRecord]:
    """Every record of a split file; a malformed line is a one-line error naming the file and line."""
    return [_record(record, number, f"{path}: line {number}") for number, record in json_lines(path)]


def _record(record: Any, number: int, where: str) -> ShareGPTRecord:
    if not isinstance(record, dict) or not isinstance(record.get("conversations"), list):
        raise FinsentError(f"{where}: no 'conversations' list (expected step 05's ShareGPT format)")
    messages = []
    for turn in record["conversations"]:
        role = ROLES.get(turn.get("from")) if isinstance(turn, dict) else None
        if role is None or not isinstance(turn.get("value"), str):
            raise FinsentError(f"{where}: a turn needs 'from' (system/human/gpt) and a string 'value', got {turn!r:.80}")
        messages.append((role, turn["value"]))
    label = record.get("label")
    return ShareGPTRecord(number, tuple(messages), str(record.get("source", "")), None if label is None else label)
