"""The results file of step 03: append-only JSONL, the cache a rerun continues from.

It holds one record per article id (status ok or failed) and, in batch mode, one record per
batch (`"kind": "batch"`: its input file, batch id, provider, model and article ids), written
before the run waits for it so that a killed run resumes the same batch. A later line for the
same article or batch replaces the earlier one (a retried failure, a batch's next state); the
superseded lines are dropped by one atomic rewrite when the store closes. A kill -9 loses at
most the line being written, which is dropped: a record counts only once its newline is on disk.

An article's record says what made its label: the provider and model, and `label_setup`'s prompt
hash, few-shot and temperature. A rerun with another setup (`LabelSetup`) labels the article
again, unless it is told to keep the labels it has.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from dataset_builder.news_articles import NewsArticle
from dataset_builder.settings import LabellerConfig
from utils.errors import FinsentError
from utils.io import JsonlAppender, atomic_path, read_jsonl

BATCH_KIND = "batch"
# A batch record's `state`: uploaded (input file id known, batch not yet created), submitted
# (batch id known; its results not yet recorded), collected (every article of it recorded).
BATCH_OPEN_STATES = {"uploaded", "submitted"}


def label_setup(messages: list[dict[str, str]], config: LabellerConfig) -> dict[str, Any]:
    """What made a label besides its provider and model (recorded beside them): the prompt as first
    sent (its SHA-256: system prompt, instructions, few-shot examples and the text), few-shot or
    not, and the temperature."""
    prompt = json.dumps(messages, ensure_ascii=False, sort_keys=True)
    return {"prompt_sha256": hashlib.sha256(prompt.encode("utf-8")).hexdigest(),
            "few_shot": config.few_shot, "temperature": config.temperature}


@dataclass(frozen=True)
class LabelSetup:
    """How this run labels: its providers' models, and the prompt it sends each item."""

    config: LabellerConfig
    messages: Callable[[Any], list[dict[str, str]]]

    def made(self, record: dict[str, Any], item: Any) -> bool:
        """Whether `record` is this setup's label of `item`. A record made by a model this run does
        not ask, from another prompt, few-shot or temperature, or one that does not say (an older
        results file), is not."""
        models = {(provider.name, model.name) for provider in self.config.providers for model in provider.models}
        setup = label_setup(self.messages(item), self.config)
        return ((record.get("provider"), record.get("model")) in models
                and all(record.get(key) == value for key, value in setup.items()))


class ResultStore:
    """The append-only JSONL of step 03: article records and batch records, latest line wins."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            lines = read_jsonl(self.path, complete_lines_only=True)  # a torn last line (kill -9) is dropped
        except ValueError as exc:
            raise FinsentError(str(exc)) from exc
        self.records: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}  # input file id → latest batch record
        self._superseded = 0  # lines a later line replaced: dropped at close()
        for number, record in enumerate(lines, start=1):
            self._check(record, number)
            self._remember(record)
        self._appender: JsonlAppender | None = None

    def _check(self, record: Any, number: int) -> None:
        if isinstance(record, dict) and record.get("kind") == BATCH_KIND:
            if not isinstance(record.get("input_file_id"), str) or not isinstance(record.get("ids"), list):
                raise FinsentError(f"{self.path}: record {number} is not a step 03 batch record "
                                   f"(input_file_id, ids)")
        elif not isinstance(record, dict) or "id" not in record or record.get("status") not in {"ok", "failed"}:
            raise FinsentError(f"{self.path}: record {number} is not a step 03 record (id, status)")

    def _remember(self, record: dict[str, Any]) -> None:
        if record.get("kind") == BATCH_KIND:
            self._superseded += record["input_file_id"] in self.batches
            self.batches[record["input_file_id"]] = record
        else:
            self._superseded += record["id"] in self.records
            self.records[record["id"]] = record

    def pending(self, articles: list[NewsArticle], retry_failed: bool = False,
                setup: LabelSetup | None = None) -> list[NewsArticle]:
        """Articles without a record (and, with `retry_failed`, those recorded as failed; with a
        `setup`, those recorded by another one), less those waiting in an open batch."""
        waiting = {key for batch in self.open_batches() for key in batch["ids"]}

        def done(article: NewsArticle) -> bool:
            record = self.records.get(article.id)
            return (record is not None and not (retry_failed and record["status"] == "failed")
                    and (setup is None or setup.made(record, article)))
        return [article for article in articles if not done(article) and article.id not in waiting]

    def made_otherwise(self, articles: list[NewsArticle], setup: LabelSetup) -> list[NewsArticle]:
        """Articles recorded (ok or failed) by another setup than `setup`, less those in an open batch."""
        waiting = {key for batch in self.open_batches() for key in batch["ids"]}
        return [article for article in articles if article.id not in waiting and article.id in self.records
                and not setup.made(self.records[article.id], article)]

    def open_batches(self) -> list[dict[str, Any]]:
        """Batches submitted (or uploaded) by a run whose results are not recorded yet."""
        return [batch for batch in self.batches.values() if batch["state"] in BATCH_OPEN_STATES]

    def append(self, records: list[dict[str, Any]]) -> None:
        """Append and fsync `records` together; safe to call from one writer thread. A record
        for an id already recorded replaces it (the old line stays until close())."""
        if self._appender is None:
            self._appender = JsonlAppender(self.path)
        self._appender.append_many(records)
        for record in records:
            self._remember(record)

    def ok_rows(self, articles: list[NewsArticle]) -> list[tuple[str, dict]]:
        """(text, answer) of every article labelled ok, in input order."""
        rows = []
        for article in articles:
            record = self.records.get(article.id)
            if record and record["status"] == "ok":
                rows.append((record["article"], record["response"]))
        return rows

    def close(self) -> None:
        """Close the file; if some lines were replaced by later ones, rewrite it atomically with
        the latest line of each article and batch (a crash before leaves both: the later wins)."""
        if self._appender is not None:
            self._appender.close()
            self._appender = None
        if self._superseded:
            latest = [*self.batches.values(), *self.records.values()]
            with atomic_path(self.path) as tmp:
                tmp.write_text("".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in latest),
                               encoding="utf-8")
            self._superseded = 0
