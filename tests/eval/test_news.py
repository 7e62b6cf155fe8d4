"""The news snapshot from a real RSS feed and real article pages served on 127.0.0.1."""
import hashlib
import json

import pytest
from tests.news_site import GOOD_PAGES, NewsSite

from tests.conftest import run_script
from eval.news import Article, PageSkipped, extract_article_text, load_snapshot, prompt_text
from utils.errors import FinsentError

FAST = ["--set", "eval.fetch_timeout_s=0.5", "--set", "eval.fetch_retries=2"]


@pytest.fixture()
def site():
    with NewsSite(slow_s=2.0) as running:
        yield running


def test_fetch_news_freezes_recent_articles_and_skips_bad_pages(site, tmp_path):
    out = tmp_path / "news" / "snapshot.json"
    result = run_script("eval/fetch_news.py", "--feed-url", site.feed_url, "--output", out,
                        "--max-age", "1", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    snapshot = json.loads(out.read_text())
    assert snapshot["ticker"] == "MSFT" and snapshot["fetched_at"]
    articles = snapshot["articles"]
    assert len(articles) == GOOD_PAGES
    for article in articles:
        assert article["key"] == hashlib.md5(article["url"].encode()).hexdigest()[:8]
        assert article["published"].endswith("-0000") or article["published"].endswith("GMT")
        assert set(article) == {"key", "url", "title", "published", "text"}
    earnings = next(a for a in articles if "Azure" in a["title"])
    assert "Capital spending climbs" in earnings["text"]  # subheads kept
    assert "Advertisement" not in earnings["text"] and "Copyright" not in earnings["text"]
    eu = next(a for a in articles if "EU" in a["title"])
    assert "What analysts say" in eu["text"] and "Shares fell 1% in Frankfurt." in eu["text"]
    reasons = {item["url"].split("/")[-1].split("?")[0]: item["reason"] for item in snapshot["skipped"]}
    assert reasons["removed-story-070000111.html"] == "HTTP 404"
    assert "Timeout" in reasons["slow-data-center-lease-100000321.html"]
    assert "consent" in reasons["microsoft-365-outage-consent-090000654.html"]
    assert "no article text" in reasons["microsoft-build-preview-143000456.html"]
    assert not any("annual-meeting" in a["url"] for a in articles)  # older than max_news_age
    assert all("finsent" in agent for _, agent in site.hits)  # a User-Agent on every request
    slow_hits = [p for p, _ in site.hits if p.startswith("/news/slow")]
    assert len(slow_hits) == 2  # retried, then given up
    assert "skipping" in result.stderr  # each skip logged with its reason
    assert load_snapshot(out).articles[0].key == articles[0]["key"]


def test_max_items_keeps_the_newest(site, tmp_path):
    out = tmp_path / "snap.json"
    result = run_script("eval/fetch_news.py", "--feed-url", site.feed_url, "--output", out,
                        "--max-items", "2", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    titles = [a["title"] for a in json.loads(out.read_text())["articles"]]
    assert titles == ["Microsoft beats estimates as Azure growth accelerates",
                      "EU widens antitrust probe into Microsoft bundling"]


def test_feed_with_zero_items_is_a_one_line_error_and_keeps_the_old_snapshot(site, tmp_path):
    out = tmp_path / "snap.json"
    out.write_text('{"kept": true}')
    result = run_script("eval/fetch_news.py", "--feed-url", site.feed_url, "--ticker", "ZZZZ",
                        "--output", out, *FAST, cwd=tmp_path)
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: news feed") and "zero items" in error
    assert out.read_text() == '{"kept": true}'


def test_unreachable_feed_names_the_host(tmp_path):
    from utils.engine import free_port

    port = free_port()
    result = run_script("eval/fetch_news.py", "--feed-url", f"http://127.0.0.1:{port}/rss?s={{ticker}}",
                        "--output", tmp_path / "s.json", *FAST, cwd=tmp_path)
    assert result.returncode == 2
    assert f"cannot reach 127.0.0.1:{port}" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "s.json").exists()


def test_extraction_falls_back_to_paragraphs_of_an_unknown_layout():
    html = "<html><body><div class='x'>" + "".join(
        f"<p>Paragraph {i} about Microsoft's quarter and its cloud business, long enough.</p>" for i in range(5)
    ) + "</div></body></html>"
    text = extract_article_text(html, min_chars=100)
    assert text.count("Paragraph") == 5
    with pytest.raises(PageSkipped, match="no article text"):
        extract_article_text("<html><body><p>Short.</p></body></html>", min_chars=100)


def test_prompt_text_is_capped_on_a_word_boundary():
    article = Article(key="k", url="u", title="Title", published="", text="word " * 500)
    text = prompt_text(article, 120)
    assert len(text) <= 122 and text.endswith(" …") and text.startswith("Title\n\n")


def test_broken_snapshot_is_named(tmp_path):
    bad = tmp_path / "s.json"
    bad.write_text('{"ticker": "MSFT", "fetched_at": "x", "articles": [{"key": "a"}]}')
    with pytest.raises(FinsentError, match=r"s.json: key 'articles.0.url'"):
        load_snapshot(bad)
    with pytest.raises(FinsentError, match="news snapshot not found"):
        load_snapshot(tmp_path / "absent.json")
