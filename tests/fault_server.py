"""A fault-injecting OpenAI-compatible chat-completions server on 127.0.0.1, for the
labeller's tests and its benchmark.

Real HTTP (aiohttp, in its own thread and event loop). It answers
`POST /v1/chat/completions` (OpenAI, OpenAI-compatible) and
`POST /openai/v1/chat/completions` (Groq's path) with a deterministic valid
SentimentResponse derived from the article text (`expected_response`), after `latency_s`,
unless a fault is scheduled for that request:

- per article: `plan={"text fragment": ["rate_limit", "server_error_500", ...]}` gives the
  faults of the 1st, 2nd, ... request about the first article whose text holds the fragment;
  later requests get the valid answer;
- at random: `fault_rate` (0..1) draws a fault from `random_faults` for each request,
  deterministically from (seed, article text, request number), so concurrency cannot change
  which request fails;
- `required_api_key`: any other bearer key gets 401.

The article is the last "Text: " of the first user message (the prompt of utils.prompts).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from aiohttp import web

FAULTS = {
    "rate_limit": "429 with a Retry-After header",
    "server_error_500": "500 Internal Server Error",
    "server_error_503": "503 Service Unavailable",
    "hang": "accept the request and never answer (the client must time out)",
    "disconnect": "close the connection without an answer",
    "truncated_json": "the answer's JSON cut in half",
    "prose_json": "the valid JSON wrapped in prose (must be accepted)",
    "fenced_json": "the valid JSON inside a ```json fence (must be accepted)",
    "schema_sentiment": "sentiment 3.0 (outside [-1, 1])",
    "schema_missing": "the confidence field missing",
    "unauthorized": "401 invalid API key",
    "forbidden": "403 no access",
}
# The faults a benchmark can inject at random: recoverable ones only.
RECOVERABLE_FAULTS = ("rate_limit", "server_error_500", "server_error_503", "hang", "disconnect",
                      "truncated_json", "prose_json", "schema_sentiment", "schema_missing")


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()


def expected_response(text: str) -> dict:
    """The valid answer the server gives about `text`: a pure function of the text."""
    digest = _digest("answer", text)
    return {"reasoning": f"Deterministic test label {digest.hex()[:8]}.",
            "sentiment": round(digest[0] / 255 * 2 - 1, 2),
            "confidence": round(0.5 + digest[1] / 510, 2)}


def article_of(messages: list[dict]) -> str:
    """The article text in a chat request built by utils.prompts.analysis_messages."""
    first_user = next((m.get("content") or "" for m in messages if m.get("role") == "user"), "")
    _, found, tail = first_user.rpartition("Text: ")
    text = tail if found else first_user
    return text.removesuffix("\nAnswer:").strip()


@dataclass
class SeenRequest:
    number: int  # 1-based, over the whole server
    article: str
    attempt: int  # 1-based, for this article
    fault: str | None
    at: float  # time.monotonic() on arrival
    path: str


class FaultServer:
    """`with FaultServer(latency_s=0.3, fault_rate=0.05) as server:` serves `server.base_url`."""

    def __init__(self, latency_s: float = 0.0, plan: dict[str, list[str]] | None = None,
                 fault_rate: float = 0.0, random_faults: tuple[str, ...] = RECOVERABLE_FAULTS,
                 seed: int = 0, retry_after_s: float = 1, required_api_key: str | None = None,
                 hang_s: float = 3600.0):
        unknown = [f for faults in (plan or {}).values() for f in faults if f not in FAULTS]
        unknown += [f for f in random_faults if f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; known: {sorted(FAULTS)}")
        self.latency_s = latency_s
        self.plan = plan or {}
        self.fault_rate = fault_rate
        self.random_faults = random_faults
        self.seed = seed
        self.retry_after_s = retry_after_s
        self.required_api_key = required_api_key
        self.hang_s = hang_s
        self.seen: list[SeenRequest] = []
        self.in_flight = 0
        self.peak_in_flight = 0  # most requests the server held at once
        self._attempts: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # --- addresses --------------------------------------------------------------------
    @property
    def root_url(self) -> str:
        """For groq.AsyncGroq, which appends /openai/v1/... itself."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """For openai.AsyncOpenAI and any OpenAI-compatible client."""
        return f"{self.root_url}/v1"

    # --- the schedule -----------------------------------------------------------------
    def _fault_for(self, article: str, attempt: int) -> str | None:
        for fragment, faults in self.plan.items():
            if fragment in article:
                return faults[attempt - 1] if attempt <= len(faults) else None
        if self.fault_rate and self.random_faults:
            digest = _digest("fault", self.seed, article, attempt)
            if int.from_bytes(digest[:4], "big") / 2**32 < self.fault_rate:
                return self.random_faults[digest[4] % len(self.random_faults)]
        return None

    def faults_seen(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for request in self.seen:
            counts[request.fault or "ok"] += 1
        return dict(counts)

    # --- HTTP -------------------------------------------------------------------------
    async def _chat(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        messages = body.get("messages") or []
        article = article_of(messages)
        with self._lock:
            self._attempts[article] += 1
            attempt = self._attempts[article]
            fault = self._fault_for(article, attempt)
            key = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if self.required_api_key is not None and key != self.required_api_key:
                fault = "unauthorized"
            self.seen.append(SeenRequest(len(self.seen) + 1, article, attempt, fault,
                                         time.monotonic(), request.path))
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if fault == "rate_limit":
            return _error(429, "rate_limit_exceeded", "Rate limit reached; retry later.",
                          {"Retry-After": f"{self.retry_after_s:g}"})
        if fault in {"server_error_500", "server_error_503"}:
            code = int(fault[-3:])
            return _error(code, "server_error", f"Injected {code}.")
        if fault == "unauthorized":
            return _error(401, "invalid_api_key", "Invalid API key.")
        if fault == "forbidden":
            return _error(403, "permission_denied", "No access to this model.")
        if fault == "hang":
            await asyncio.sleep(self.hang_s)
        if fault == "disconnect":
            request.transport.close()  # the client sees the connection drop mid-request
            return web.Response()
        content = _content(expected_response(article), fault)
        prompt_tokens = sum(len(m.get("content") or "") for m in messages) // 4
        return web.json_response({
            "id": f"chatcmpl-{len(self.seen)}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", "fault-server"),
            "choices": [{"index": 0, "finish_reason": "length" if fault == "truncated_json" else "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(content) // 4,
                      "total_tokens": prompt_tokens + len(content) // 4},
        })

    async def _stats(self, request: web.Request) -> web.Response:
        """What the server saw, for a client in another process (the benchmark)."""
        with self._lock:
            return web.json_response({"requests": len(self.seen), "faults": self.faults_seen(),
                                      "peak_in_flight": self.peak_in_flight})

    # --- life cycle -------------------------------------------------------------------
    def start(self) -> "FaultServer":
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._open())
            except BaseException as exc:  # surfaced in start()
                failure.append(exc)
                started.set()
                return
            started.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._close())
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="fault-server", daemon=True)
        self._thread.start()
        started.wait(30)
        if failure:
            raise failure[0]
        return self

    async def _open(self) -> None:
        app = web.Application(client_max_size=16 * 2**20)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/openai/v1/chat/completions", self._chat)
        app.router.add_get("/stats", self._stats)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        await self._runner.cleanup()
        hung = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in hung:
            task.cancel()
        await asyncio.gather(*hung, return_exceptions=True)

    def stop(self) -> None:
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> "FaultServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _error(status: int, code: str, message: str, headers: dict | None = None) -> web.Response:
    body = {"error": {"message": message, "type": code, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def _content(answer: dict, fault: str | None) -> str:
    text = json.dumps(answer)
    if fault == "truncated_json":
        return text[: len(text) // 2]
    if fault == "prose_json":
        return f"Sure! Here is my analysis of the article:\n{text}\nLet me know if you need more."
    if fault == "fenced_json":
        return f"```json\n{json.dumps(answer, indent=2)}\n```"
    if fault == "schema_sentiment":
        return json.dumps({**answer, "sentiment": 3.0})
    if fault == "schema_missing":
        return json.dumps({k: v for k, v in answer.items() if k != "confidence"})
    return text


def main() -> None:
    """`python -m tests.fault_server`: serve in its own process (prints the base URL) until
    killed; `GET /stats` reports what it saw."""
    import argparse

    parser = argparse.ArgumentParser(description="A fault-injecting OpenAI-compatible server.")
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per answer")
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retry-after", type=float, default=1, help="Retry-After of a 429, s")
    args = parser.parse_args()
    with FaultServer(latency_s=args.latency, fault_rate=args.fault_rate, seed=args.seed,
                     retry_after_s=args.retry_after) as server:
        print(server.base_url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
