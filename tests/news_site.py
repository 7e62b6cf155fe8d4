"""A local stand-in for Yahoo Finance in tests: the RSS feed and the article pages it links to,
served on 127.0.0.1 from the fixtures in tests/fixtures/news (real formats, our own text),
with the faults a live site has: a page without text, a 404, a slow page, a consent wall."""
from __future__ import annotations

import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

FIXTURES = Path(__file__).parent / "fixtures" / "news"

PAGES = {
    "/news/microsoft-earnings-beat-azure-211500123.html": "article_caas.html",
    "/m/a7f0b9e2-1c44-3d0e-8b6f-2f9d4e7c5a22/eu-widens-microsoft-probe.html": "article_other_layout.html",
    "/video/microsoft-build-preview-143000456.html": "article_video_no_text.html",
    "/news/microsoft-gaming-job-cuts-120000789.html": "article_gaming.html",
    "/news/microsoft-annual-meeting-date-080000987.html": "article_caas.html",
    "/consent": "consent.html",
}
SLOW_PAGE = "/news/slow-data-center-lease-100000321.html"
CONSENT_REDIRECT = "/news/microsoft-365-outage-consent-090000654.html"
GOOD_PAGES = 3  # earnings, EU probe, gaming cuts


class NewsSite:
    """`with NewsSite(slow_s=3) as site:` serves `site.feed_url` ("…/rss?s={ticker}")."""

    def __init__(self, slow_s: float = 3.0):
        self.slow_s = slow_s
        self.hits: list[tuple[str, str]] = []  # (path, User-Agent)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def feed_url(self) -> str:
        return self.base + "/rss?s={ticker}"

    def feed(self, ticker: str) -> str:
        if ticker != "MSFT":
            return (FIXTURES / "empty_rss.xml").read_text()
        now = time.time()
        fill = {"base": self.base, "date_old": formatdate(now - 5 * 86400)}
        fill.update({f"date_{h}h": formatdate(now - h * 3600) for h in range(1, 8)})
        text = (FIXTURES / "yahoo_rss.xml").read_text()
        for key, value in fill.items():
            text = text.replace("{" + key + "}", value)
        return text

    def __enter__(self) -> "NewsSite":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: str, content_type: str = "text/html; charset=utf-8",
                      headers: dict[str, str] | None = None) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                site.hits.append((url.path, self.headers.get("User-Agent", "")))
                if url.path == "/rss":
                    ticker = parse_qs(url.query).get("s", [""])[0]
                    return self._send(200, site.feed(ticker), "application/rss+xml; charset=utf-8")
                if url.path == SLOW_PAGE:
                    time.sleep(site.slow_s)
                    return self._send(200, (FIXTURES / "article_caas.html").read_text())
                if url.path == CONSENT_REDIRECT:
                    return self._send(302, "", headers={"Location": "/consent?brandType=nonEu"})
                if url.path in PAGES:
                    return self._send(200, (FIXTURES / PAGES[url.path]).read_text())
                self._send(404, "<html><body><h1>Page not found</h1></body></html>")

        return Handler
