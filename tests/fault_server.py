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

`GET /v1/models` lists `models` (the eval stage's openai backend checks its model there).

It also speaks the Batch API (OpenAI's paths under /v1, Groq's under /openai/v1): `POST files`
(multipart, purpose batch), `GET files/{id}/content`, `POST batches`, `GET batches`,
`GET batches/{id}`, `POST batches/{id}/cancel`. A batch runs in the background, one request per
`batch_request_s` (read live, so a test can hold a batch in progress and then let it run), each
answered as the chat endpoint would (the same plan and faults: a 5xx or 429 goes to the error
file, a bad answer to the output file), and with these faults of its own:
- `batch_expire_after=N`: the batch expires after N requests; the rest go to the error file
  with code batch_expired (what OpenAI does at the end of the completion window);
- plan fault `broken_output_line`: that request's output line is not JSON;
- `max_batch_requests`: a bigger input file makes the batch fail validation (status failed);
- `batch_api_down` (read live): every files and batches endpoint answers 503, counted in
  `batch_api_refused` (a provider whose Batch API is not there).
`batches_created` counts the batches created, for tests that must not pay twice.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

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
    "broken_output_line": "in a batch: the request's output line is not JSON",
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
                 hang_s: float = 3600.0, batch_request_s: float = 0.0,
                 batch_expire_after: int | None = None, max_batch_requests: int = 50_000,
                 models: tuple[str, ...] = ("test-model",), batch_api_down: bool = False,
                 answer: Callable[[str], dict] = expected_response):
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
        self.models = models
        self.answer = answer  # the valid answer about an article (a synthesis test's has a text too)
        self.seen: list[SeenRequest] = []
        self.in_flight = 0
        self.peak_in_flight = 0  # most requests the server held at once
        self._attempts: dict[str, int] = defaultdict(int)
        self.batch_request_s = batch_request_s
        self.batch_expire_after = batch_expire_after
        self.max_batch_requests = max_batch_requests
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.batches_created = 0
        self.batch_requests_answered = 0
        self.batch_api_down = batch_api_down
        self.batch_api_refused = 0
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

    def _note(self, messages: list[dict], path: str, authorized: bool = True) -> tuple[str, str | None]:
        """Count a chat request (sent directly or inside a batch): its article and its fault."""
        article = article_of(messages)
        with self._lock:
            self._attempts[article] += 1
            attempt = self._attempts[article]
            fault = self._fault_for(article, attempt) if authorized else "unauthorized"
            self.seen.append(SeenRequest(len(self.seen) + 1, article, attempt, fault,
                                         time.monotonic(), path))
        return article, fault

    def _authorized(self, request: web.Request) -> bool:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return self.required_api_key is None or key == self.required_api_key

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        messages = body.get("messages") or []
        article, fault = self._note(messages, request.path, self._authorized(request))
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
        return web.json_response(self._completion(body, article, fault))

    def _completion(self, body: dict, article: str, fault: str | None) -> dict:
        messages = body.get("messages") or []
        content = _content(self.answer(article), fault)
        prompt_tokens = sum(len(m.get("content") or "") for m in messages) // 4
        return {
            "id": f"chatcmpl-{len(self.seen)}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", "fault-server"),
            "choices": [{"index": 0, "finish_reason": "length" if fault == "truncated_json" else "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(content) // 4,
                      "total_tokens": prompt_tokens + len(content) // 4},
        }

    async def _list_models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "fault-server"} for name in self.models]})

    # --- the Batch API ----------------------------------------------------------------
    @web.middleware
    async def _batch_api_key(self, request: web.Request, handler) -> web.StreamResponse:
        """The Batch API's endpoints refuse a wrong key (chat requests count it as a fault), and
        answer 503 while `batch_api_down`."""
        if "/chat/" not in request.path and request.path != "/stats" and not self._authorized(request):
            return _error(401, "invalid_api_key", "Invalid API key.")
        if self.batch_api_down and ("/files" in request.path or "/batches" in request.path):
            with self._lock:
                self.batch_api_refused += 1
            return _error(503, "server_error", "Injected 503: the Batch API is down.")
        return await handler(request)

    async def _upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        if form.get("purpose") != "batch" or upload is None or not hasattr(upload, "file"):
            return _error(400, "invalid_request_error", "expected a file with purpose batch")
        data = upload.file.read()
        with self._lock:
            file_id = f"file-{uuid.uuid4().hex[:16]}"
            self.files[file_id] = data
        return web.json_response({"id": file_id, "object": "file", "bytes": len(data),
                                  "created_at": int(time.time()), "filename": upload.filename,
                                  "purpose": "batch", "status": "processed"})

    async def _file_content(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["file_id"])
        if data is None:
            return _error(404, "not_found", "No such file.")
        return web.Response(body=data, content_type="application/octet-stream")

    async def _create_batch(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("input_file_id") not in self.files:
            return _error(400, "invalid_request_error", "input_file_id: no such file")
        with self._lock:
            self.batches_created += 1
            batch_id = f"batch_{uuid.uuid4().hex[:16]}"  # unique, as a real API's are
            batch = self.batches[batch_id] = {
                "id": batch_id, "object": "batch", "endpoint": body.get("endpoint"), "errors": None,
                "input_file_id": body["input_file_id"], "completion_window": body.get("completion_window"),
                "status": "validating", "output_file_id": None, "error_file_id": None,
                "created_at": int(time.time()), "metadata": body.get("metadata"),
                "request_counts": {"total": 0, "completed": 0, "failed": 0}}
        asyncio.get_running_loop().create_task(self._run_batch(batch))
        return web.json_response(batch)

    async def _list_batches(self, request: web.Request) -> web.Response:
        data = sorted(self.batches.values(), key=lambda b: b["created_at"], reverse=True)
        return web.json_response({"object": "list", "data": data, "has_more": False,
                                  "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None})

    async def _get_batch(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["batch_id"])
        return web.json_response(batch) if batch else _error(404, "not_found", "No such batch.")

    async def _cancel_batch(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None:
            return _error(404, "not_found", "No such batch.")
        if batch["status"] in {"validating", "in_progress"}:
            batch["status"] = "cancelling"
            batch["cancelling_at"] = int(time.time())
        return web.json_response(batch)

    async def _batch_pause(self, batch: dict) -> bool:
        """Wait `batch_request_s` (read live: a test can hold a batch, then release it);
        False if the batch is being cancelled."""
        started = time.monotonic()
        while time.monotonic() - started < self.batch_request_s and batch["status"] != "cancelling":
            await asyncio.sleep(min(0.02, self.batch_request_s))
        return batch["status"] != "cancelling"

    async def _run_batch(self, batch: dict) -> None:
        """Answer the batch's requests one by one, then write its output and error files."""
        lines = [json.loads(line) for line in self.files[batch["input_file_id"]].decode("utf-8").splitlines()
                 if line.strip()]
        if len(lines) > self.max_batch_requests:
            batch.update(status="failed", failed_at=int(time.time()), errors={"object": "list", "data": [
                {"code": "too_many_requests", "line": None,
                 "message": f"{len(lines)} requests; a batch holds at most {self.max_batch_requests}"}]})
            return
        batch.update(status="in_progress", in_progress_at=int(time.time()))
        batch["request_counts"]["total"] = len(lines)
        output, errors = [], []
        for number, line in enumerate(lines):
            if number == self.batch_expire_after or not await self._batch_pause(batch):
                break
            article, fault = self._note(line["body"].get("messages") or [], f"batch {batch['id']}: {line['url']}")
            self.batch_requests_answered += 1
            entry = {"id": f"batch_req_{number}", "custom_id": line["custom_id"], "error": None}
            if fault in {"rate_limit", "server_error_500", "server_error_503"}:
                code = 429 if fault == "rate_limit" else int(fault[-3:])
                entry["response"] = {"status_code": code, "request_id": f"req_{number}",
                                     "body": {"error": {"message": f"Injected {code}.", "type": fault}}}
                errors.append(json.dumps(entry))
                batch["request_counts"]["failed"] += 1
                continue
            entry["response"] = {"status_code": 200, "request_id": f"req_{number}",
                                 "body": self._completion(line["body"], article, fault)}
            output.append("{not json" if fault == "broken_output_line" else json.dumps(entry))
            batch["request_counts"]["completed"] += 1
        ended = "cancelled" if batch["status"] == "cancelling" else "completed"
        if ended == "completed" and len(output) + len(errors) < len(lines):
            ended = "expired"
            for line in lines[len(output) + len(errors):]:
                errors.append(json.dumps({"id": None, "custom_id": line["custom_id"], "response": None,
                                          "error": {"code": "batch_expired", "message": "This request "
                                                    "could not be executed before the completion window expired."}}))
        with self._lock:
            for kind, entries in (("output_file_id", output), ("error_file_id", errors)):
                if entries:
                    file_id = f"file-{uuid.uuid4().hex[:16]}"
                    self.files[file_id] = ("\n".join(entries) + "\n").encode("utf-8")
                    batch[kind] = file_id
        batch.update(status=ended, **{f"{ended}_at": int(time.time())})

    async def _stats(self, request: web.Request) -> web.Response:
        """What the server saw, for a client in another process (the benchmark)."""
        with self._lock:
            return web.json_response({"requests": len(self.seen), "faults": self.faults_seen(),
                                      "peak_in_flight": self.peak_in_flight,
                                      "batches_created": self.batches_created})

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
        app = web.Application(client_max_size=16 * 2**20, middlewares=[self._batch_api_key])
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/openai/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._list_models)
        for prefix in ("/v1", "/openai/v1"):  # OpenAI's paths, Groq's paths
            app.router.add_post(f"{prefix}/files", self._upload)
            app.router.add_get(f"{prefix}/files/{{file_id}}/content", self._file_content)
            app.router.add_post(f"{prefix}/batches", self._create_batch)
            app.router.add_get(f"{prefix}/batches", self._list_batches)
            app.router.add_get(f"{prefix}/batches/{{batch_id}}", self._get_batch)
            app.router.add_post(f"{prefix}/batches/{{batch_id}}/cancel", self._cancel_batch)
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
    parser.add_argument("--batch-request-s", type=float, default=0.0,
                        help="seconds a batch spends on each of its requests")
    args = parser.parse_args()
    with FaultServer(latency_s=args.latency, fault_rate=args.fault_rate, seed=args.seed,
                     retry_after_s=args.retry_after, batch_request_s=args.batch_request_s) as server:
        print(server.base_url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
