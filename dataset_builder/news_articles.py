"""News articles for step 03: a folder of newsdata.io CSV exports in, `Article,JSON` CSV out.

An article is its `title` and `description`; `pubDate` (when present) dates it for the
prompt's `{date_msg}`. Its id is a hash of its text, so the same text is labelled once
whichever file or row it comes from.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from utils.errors import FinsentError
from utils.io import atomic_path, not_text_error
from utils.prompts import analysis_messages, date_message
from utils.schema import SentimentResponse

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("title", "description")
DATE_COLUMN = "pubDate"


@dataclass(frozen=True)
class NewsArticle:
    id: str
    text: str
    published: str | None  # ISO date (YYYY-MM-DD) or None


def article_id(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def article_text(title: str, description: str) -> str:
    """`title. description`; the description alone is dropped when it only repeats the title."""
    title, description = title.strip(), description.strip()
    if not description or description == title:
        return title
    if not title:
        return description
    joiner = " " if title[-1] in ".!?:;" else ". "
    return f"{title}{joiner}{description}"


def article_messages(article: NewsArticle, few_shot: bool = True) -> list[dict[str, str]]:
    """The 5-shot prompt about `article`, its publication date filling `{date_msg}`."""
    return analysis_messages(article.text, date_message(article.published), few_shot=few_shot)


def _read_export(path: Path) -> list[dict[str, str]]:
    """The rows of one export; a bad file is a one-line error naming it."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None:
                raise FinsentError(f"{path}: empty file (expected a newsdata.io CSV export)")
            missing = [column for column in REQUIRED_COLUMNS if column not in reader.fieldnames]
            if missing:
                raise FinsentError(f"{path}: missing column(s) {', '.join(missing)} "
                                   f"(a newsdata.io export has title and description)")
            return list(reader)
    except UnicodeDecodeError as exc:
        raise not_text_error(path, exc) from exc
    except csv.Error as exc:
        raise FinsentError(f"{path}: not a valid CSV: {exc}") from exc


def _published(value: str) -> str | None:
    value = value.strip()
    if not value or value.lower() in {"none", "nan", "null"}:
        return None
    return value.split()[0].split("T")[0]


def csv_files(source: Path) -> list[Path]:
    """`source` is a folder of CSVs or one CSV file."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FinsentError(f"news input not found: {source} (a folder of newsdata.io CSV exports)")
    files = sorted(p for p in source.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
    if not files:
        raise FinsentError(f"{source}: no .csv files in this folder")
    return files


def read_news(source: Path) -> list[NewsArticle]:
    """Every distinct article of the CSVs under `source`, in file then row order."""
    articles: dict[str, NewsArticle] = {}
    blank = repeated = 0
    for path in csv_files(source):
        for row in _read_export(path):
            text = article_text(row["title"] or "", row["description"] or "")
            if not text:
                blank += 1
                continue
            key = article_id(text)
            if key in articles:
                repeated += 1
                continue
            articles[key] = NewsArticle(key, text, _published(row.get(DATE_COLUMN) or ""))
    if blank or repeated:
        log.info("%s: skipped %d row(s) without title/description and %d repeated article(s)",
                 source, blank, repeated)
    if not articles:
        raise FinsentError(f"{source}: no articles (every row lacks a title and a description)")
    return list(articles.values())


def write_news_csv(target: Path, rows: Iterable[tuple[str, dict]]) -> int:
    """Write `Article,JSON` rows (each JSON re-validated as a SentimentResponse) atomically."""
    count = 0
    with atomic_path(target) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Article", "JSON"])
        for text, response in rows:
            answer = SentimentResponse.model_validate(response).model_dump()
            writer.writerow([text, json.dumps(answer, ensure_ascii=False)])
            count += 1
    return count
