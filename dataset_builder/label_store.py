"""The results file of step 03: append-only JSONL, the cache a rerun continues from.

It holds one record per article id (status ok or failed) and, in batch mode, one record per
batch (`"kind": "batch"`: its input file, batch id, provider, model and article ids), written
before the run waits for it so that a killed run resumes the same batch. A later line for the
same article or batch replaces the earlier one (a retried failure, a batch's next state); the
superseded lines are dropped by one atomic rewrite when the store closes. A kill -9 loses at
most the line being written, which is dropped: a record counts only once its newline is on disk.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dataset_builder.news_articles import NewsArticle
from utils.errors import FinsentError
from utils.io import JsonlAppender, atomic_path, read_jsonl

BATCH_KIND = "batch"
# A batch record's `state`: uploaded (input file id known, batch not yet created), submitted
# (batch id known; its results not yet recorded), collected (every article of it recorded).
BATCH_OPEN_STATES = {"uploaded", "submitted"}


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

    def pending(self, articles: list[NewsArticle], retry_failed: bool = False) -> list[NewsArticle]:
        """Articles without a record (and, with `retry_failed`, those recorded as failed), less
        those waiting in an open batch."""
        waiting = {key for batch in self.open_batches() for key in batch["ids"]}

        def done(article: NewsArticle) -> bool:
            record = self.records.get(article.id)
            return record is not None and not (retry_failed and record["status"] == "failed")
        return [article for article in articles if not done(article) and article.id not in waiting]

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
