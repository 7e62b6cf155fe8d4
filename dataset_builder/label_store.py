"""The results file of step 03: append-only JSONL, one record per article id, the cache a
rerun continues from. A kill -9 loses at most the line being written, which is dropped."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dataset_builder.news_articles import NewsArticle
from utils.errors import FinsentError
from utils.io import JsonlAppender, atomic_path, read_jsonl


class ResultStore:
    """The append-only JSONL of step 03: one record per article id (status ok or failed)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            lines = read_jsonl(self.path)  # a torn last line (kill -9) is dropped
        except ValueError as exc:
            raise FinsentError(str(exc)) from exc
        self.records: dict[str, dict[str, Any]] = {}
        for number, record in enumerate(lines, start=1):
            if not isinstance(record, dict) or "id" not in record or record.get("status") not in {"ok", "failed"}:
                raise FinsentError(f"{self.path}: record {number} is not a step 03 record (id, status)")
            self.records[record["id"]] = record
        self._appender: JsonlAppender | None = None

    def pending(self, articles: list[NewsArticle], retry_failed: bool = False) -> list[NewsArticle]:
        """Articles without a record (and, with `retry_failed`, those recorded as failed)."""
        def done(article: NewsArticle) -> bool:
            record = self.records.get(article.id)
            return record is not None and not (retry_failed and record["status"] == "failed")
        return [article for article in articles if not done(article)]

    def forget_failed(self, ids: set[str]) -> int:
        """Drop the failed records of `ids` in one atomic rewrite, so that retrying them still
        leaves one record per id. An ok record is never dropped."""
        drop = {key for key in ids if self.records.get(key, {}).get("status") == "failed"}
        if drop:
            self.close()
            self.records = {key: rec for key, rec in self.records.items() if key not in drop}
            with atomic_path(self.path) as tmp:
                tmp.write_text("".join(json.dumps(rec, ensure_ascii=False) + "\n"
                                       for rec in self.records.values()), encoding="utf-8")
        return len(drop)

    def append(self, records: list[dict[str, Any]]) -> None:
        """Append and fsync `records` together; safe to call from one writer thread."""
        if self._appender is None:
            self._appender = JsonlAppender(self.path)
        self._appender.append_many(records)
        for record in records:
            self.records[record["id"]] = record

    def ok_rows(self, articles: list[NewsArticle]) -> list[tuple[str, dict]]:
        """(text, answer) of every article labelled ok, in input order."""
        rows = []
        for article in articles:
            record = self.records.get(article.id)
            if record and record["status"] == "ok":
                rows.append((record["article"], record["response"]))
        return rows

    def close(self) -> None:
        if self._appender is not None:
            self._appender.close()
            self._appender = None
