"""News articles for step 03: a folder of newsdata.io CSV exports in, `Article,JSON` CSV out.

An article is its `title` and `description`; `pubDate` (when present) dates it for the
prompt's `{date_msg}`. Its id is a hash of its text, so the same text is labelled once
whichever file or row it comes from.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from utils.errors import FinsentError
from utils.io import atomic_path
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


def _read_export(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FinsentError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    except pd.errors.EmptyDataError as exc:
        raise FinsentError(f"{path}: empty file (expected a newsdata.io CSV export)") from exc
    except pd.errors.ParserError as exc:
        raise FinsentError(f"{path}: not a valid CSV: {str(exc).strip().splitlines()[0]}") from exc
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise FinsentError(f"{path}: missing column(s) {', '.join(missing)} "
                           f"(a newsdata.io export has title and description)")
    return frame


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
        frame = _read_export(path)
        dates = frame[DATE_COLUMN] if DATE_COLUMN in frame.columns else [""] * len(frame)
        for title, description, published in zip(frame["title"], frame["description"], dates):
            text = article_text(title, description)
            if not text:
                blank += 1
                continue
            key = article_id(text)
            if key in articles:
                repeated += 1
                continue
            articles[key] = NewsArticle(key, text, _published(published))
    if blank or repeated:
        log.info("%s: skipped %d row(s) without title/description and %d repeated article(s)",
                 source, blank, repeated)
    if not articles:
        raise FinsentError(f"{source}: no articles (every row lacks a title and a description)")
    return list(articles.values())


def write_news_csv(target: Path, rows: Iterable[tuple[str, dict]]) -> int:
    """Write `Article,JSON` rows (each JSON re-validated as a SentimentResponse) atomically."""
    articles, answers = [], []
    for text, response in rows:
        answers.append(json.dumps(SentimentResponse.model_validate(response).model_dump(),
                                  ensure_ascii=False))
        articles.append(text)
    with atomic_path(target) as tmp:
        pd.DataFrame({"Article": articles, "JSON": answers}).to_csv(tmp, index=False)
    return len(articles)
