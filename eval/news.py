"""A frozen news snapshot: the ticker's Yahoo Finance RSS feed, each article's page text, one
JSON file that every model and iteration then reads, so they all judge the same articles.

Snapshot file::

    {"ticker": "MSFT", "fetched_at": "2026-11-25T12:00:00+00:00", "feed_url": "...",
     "articles": [{"key": "f76ab0da", "url": "...", "title": "...",
                   "published": "Thu, 23 May 2024 18:11:26 +0000", "text": "..."}],
     "skipped": [{"url": "...", "reason": "HTTP 404"}]}

`key` is the first 8 hex digits of md5(url) and `published` the feed's own date string, as in
the original study's result files.
"""
from __future__ import annotations

import calendar
import hashlib
import json
import logging
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from eval.settings import EvalConfig
from utils.errors import FinsentError
from utils.io import atomic_write_json, not_text_error

log = logging.getLogger(__name__)


class Article(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    url: str
    title: str
    published: str
    text: str


class Snapshot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticker: str
    fetched_at: str
    feed_url: str = ""
    articles: list[Article]
    skipped: list[dict[str, str]] = []


def article_key(url: str) -> str:
    """First 8 hex digits of md5(url): the original's article key."""
    return hashlib.md5(url.encode()).hexdigest()[:8]


class PageSkipped(Exception):
    """An article page without usable text; the message is the reason logged and recorded."""


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, (httpx.TimeoutException, httpx.NetworkError)):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and (
        exc.response.status_code >= 500 or exc.response.status_code == 429)


class Fetcher:
    """Polite HTTP: a User-Agent, timeouts, a few retries with backoff on transient errors."""

    def __init__(self, config: EvalConfig):
        self._client = httpx.Client(headers={"User-Agent": config.fetch_user_agent},
                                    timeout=config.fetch_timeout_s, follow_redirects=True)
        self.get = retry(retry=retry_if_exception(_retryable), stop=stop_after_attempt(config.fetch_retries),
                         wait=wait_exponential(multiplier=0.5, max=5), reraise=True)(self._get)

    def _get(self, url: str) -> httpx.Response:
        response = self._client.get(url)
        response.raise_for_status()
        return response

    def close(self) -> None:
        self._client.close()


def fetch_feed(fetcher: Fetcher, feed_url: str) -> list[dict]:
    """The feed's entries (feedparser dicts); an unreachable feed or one with no items is an error."""
    import feedparser

    try:
        response = fetcher.get(feed_url)
    except httpx.HTTPStatusError as exc:
        raise FinsentError(f"news feed {feed_url}: HTTP {exc.response.status_code}") from exc
    except httpx.HTTPError as exc:
        raise FinsentError(f"news feed {feed_url}: cannot reach {urlparse(feed_url).netloc} "
                           f"({exc.__class__.__name__})") from exc
    feed = feedparser.parse(response.content)
    if not feed.entries:
        reason = f" ({feed.bozo_exception})" if feed.get("bozo") else ""
        raise FinsentError(f"news feed {feed_url}: zero items{reason}")
    return list(feed.entries)


def recent_entries(entries: list[dict], max_age_days: float, max_items: int,
                   now: float | None = None) -> list[dict]:
    """Entries published within `max_age_days`, newest first, at most `max_items`."""
    now = time.time() if now is None else now
    dated = []
    for entry in entries:
        parsed = entry.get("published_parsed")
        if not parsed or not entry.get("link"):
            log.info("skipping feed item without a date or link: %s", entry.get("title", "?"))
            continue
        stamp = calendar.timegm(parsed)
        if now - stamp <= max_age_days * 86400:
            dated.append((stamp, entry))
    dated.sort(key=lambda item: item[0], reverse=True)
    return [entry for _, entry in dated[:max_items]]


# Article bodies on Yahoo Finance and the sites it links to, most specific first.
_BODY_SELECTORS = ["div.caas-body", "div.atoms-wrapper", "div.body", "[itemprop=articleBody]",
                   "article", "main"]
_CONSENT = re.compile(r"\b(consent|cookie|privacy settings|reject all|accept all)\b", re.IGNORECASE)
_TEXT_TAGS = ["p", "h2", "h3", "li"]


def extract_article_text(html: str, min_chars: int = 200) -> str:
    """Body paragraphs and subheads of an article page; `PageSkipped` for a consent wall or a
    page without enough text."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "figure"]):
        if tag.name != "form" or _CONSENT.search(tag.get_text(" ")) is None:
            tag.decompose()
    body = next((found for sel in _BODY_SELECTORS if (found := soup.select_one(sel)) is not None), soup)
    parts = []
    for node in body.find_all(_TEXT_TAGS):
        if node.name == "li" and node.find_parent(["ul", "ol"]) is None:
            continue
        text = " ".join(node.get_text(" ", strip=True).split())
        if text and not any(text in part for part in parts[-1:]):
            parts.append(text)
    text = "\n".join(parts)
    if soup.find("form") is not None and _CONSENT.search(soup.get_text(" ")) and len(text) < 4 * min_chars:
        raise PageSkipped("consent page (cookie/privacy wall) instead of the article")
    if len(text) < min_chars:
        raise PageSkipped(f"no article text ({len(text)} characters, fewer than {min_chars})")
    return text


def fetch_article_text(fetcher: Fetcher, url: str, min_chars: int) -> str:
    try:
        response = fetcher.get(url)
    except httpx.HTTPStatusError as exc:
        raise PageSkipped(f"HTTP {exc.response.status_code}") from exc
    except httpx.HTTPError as exc:
        raise PageSkipped(f"{exc.__class__.__name__} after retries") from exc
    host = urlparse(str(response.url)).netloc
    if host.startswith(("consent.", "guce.")):
        raise PageSkipped(f"redirected to the consent page {host}")
    return extract_article_text(response.text, min_chars)


def _summary(entry: dict) -> str:
    from bs4 import BeautifulSoup

    return " ".join(BeautifulSoup(entry.get("summary", ""), "html.parser").get_text(" ").split())


def build_snapshot(config: EvalConfig, progress: bool = True) -> Snapshot:
    """Fetch the feed and every recent article page; pages without text are skipped, logged
    and listed in `skipped`."""
    from tqdm import tqdm

    feed_url = config.news_feed_url.format(ticker=config.ticker_symbol)
    fetcher = Fetcher(config)
    try:
        entries = recent_entries(fetch_feed(fetcher, feed_url), config.max_news_age, config.max_news_items)
        if not entries:
            raise FinsentError(f"news feed {feed_url}: no item newer than max_news_age = "
                               f"{config.max_news_age} day(s)")
        articles, skipped = [], []
        for entry in tqdm(entries, desc="articles", unit="page", disable=not progress):
            url = entry["link"]
            try:
                body = fetch_article_text(fetcher, url, config.min_article_chars)
            except PageSkipped as exc:
                log.warning("skipping %s: %s", url, exc)
                skipped.append({"url": url, "reason": str(exc)})
                continue
            summary = _summary(entry)
            text = body if not summary or summary[:80] in body else f"{summary}\n{body}"
            articles.append(Article(key=article_key(url), url=url, title=entry.get("title", "").strip(),
                                    published=entry.get("published", ""), text=text))
    finally:
        fetcher.close()
    if not articles:
        raise FinsentError(f"news feed {feed_url}: none of {len(entries)} article pages had text "
                           f"(first reason: {skipped[0]['reason']})")
    return Snapshot(ticker=config.ticker_symbol, fetched_at=datetime.now(timezone.utc).isoformat(),
                    feed_url=feed_url, articles=articles, skipped=skipped)


def save_snapshot(snapshot: Snapshot, path: str | Path) -> None:
    atomic_write_json(path, snapshot.model_dump(), indent=2)


def load_snapshot(path: str | Path) -> Snapshot:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FinsentError(f"news snapshot not found: {path} (run eval/fetch_news.py)") from exc
    except json.JSONDecodeError as exc:
        raise FinsentError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    except UnicodeDecodeError as exc:
        raise not_text_error(path, exc) from None
    try:
        snapshot = Snapshot.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise FinsentError(f"{path}: key '{'.'.join(map(str, first['loc']))}': {first['msg']}") from exc
    if not snapshot.articles:
        raise FinsentError(f"{path}: the snapshot has no articles")
    return snapshot


def snapshot_headlines(path: str | Path) -> dict[str, str]:
    """Article key → headline of the news snapshot at `path`, for the figures' labels; {} where it
    is absent or unreadable (the labels then come from the URLs' words)."""
    try:
        return {article.key: article.title for article in load_snapshot(path).articles}
    except FinsentError as exc:
        log.info("article labels from their URLs (%s)", exc)
        return {}


def prompt_text(article: Article, max_chars: int) -> str:
    """What a model reads: the headline and the article, cut to `max_chars`."""
    text = f"{article.title}\n\n{article.text}" if article.title else article.text
    return text if len(text) <= max_chars else text[:max_chars].rsplit(" ", 1)[0] + " …"
