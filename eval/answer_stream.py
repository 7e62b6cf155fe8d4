"""Ask a model about a text and watch the answer as it is generated, then read it validated.

Where the tokens come from (`open_stream`):
* a GGUF on the embedded llama.cpp engine (`utils.engine`), or any eval backend entry
  (`models_to_test`-style: `openai` at its first base URL, `ollama` at its OpenAI-compatible
  `/v1`, `llamacpp`): an OpenAI-compatible chat completion with `stream: true`, read as
  server-sent events (`sse_pieces`). Needs no fine-tune extras (no torch);
* an HF model folder (a merged fine-tune): transformers' `generate` in a thread with a
  `TextIteratorStreamer` (CPU, or the GPU where there is one); needs the fine-tune extras.

`serve` keeps the embedded engine up on a fixed local port, for step 03's `openai_compatible`
provider, eval's `openai` backend or any OpenAI client.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from eval.backends import DEFAULT_OLLAMA_HOST, Messages, ModelSpec
from eval.settings import EvalConfig
from utils.engine import EmbeddedEngine, EngineSettings
from utils.errors import FinsentError, require_extra
from utils.labels import to_class
from utils.schema import (ResponseParseError, SentimentResponse, json_schema_response_format,
                          parse_sentiment_response, sentiment_json_schema)


class TokenStream(Protocol):
    where: str  # the server URL or model folder, for messages

    def stream(self, messages: Messages) -> Iterator[str]:
        """The answer's text, piece by piece as the model writes it."""


def sse_pieces(lines: Iterable[str]) -> Iterator[str]:
    """The text pieces of an OpenAI-compatible streamed chat completion (`data: {...}` lines,
    `data: [DONE]` at the end)."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[len("data:"):].strip()
        if data == "[DONE]":
            return
        for choice in json.loads(data).get("choices", []):
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                yield piece


class OpenAICompatibleStream:
    """POST /chat/completions with `stream: true` to an OpenAI-compatible server."""

    def __init__(self, base_url: str, model: str | None, options: dict[str, Any], api_key: str | None = None,
                 timeout_s: float = 600):
        self.where = base_url
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)
        self._body = {"model": model, "stream": True, **options}

    def stream(self, messages: Messages) -> Iterator[str]:
        try:
            with self._http.stream("POST", "/chat/completions", json={**self._body, "messages": messages}) as reply:
                if reply.status_code >= 400:
                    detail = (reply.read().decode("utf-8", "replace").strip().splitlines() or [""])[0][:200]
                    raise FinsentError(f"{self.where} answered HTTP {reply.status_code} to a chat completion: {detail}")
                yield from sse_pieces(reply.iter_lines())
        except httpx.TransportError as exc:
            raise FinsentError(f"cannot reach {self.where} ({exc.__class__.__name__}): is the server running?") from None

    def close(self) -> None:
        self._http.close()


class HFStream:
    """A transformers model folder, generating in a thread that feeds a TextIteratorStreamer."""

    def __init__(self, folder: Path, max_tokens: int, temperature: float):
        if not (folder / "config.json").is_file():
            raise FinsentError(f"--hf {folder}: no config.json (a merged model folder, e.g. outputs/finetune/merged)")
        require_extra("finetune")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.where = str(folder)
        self._device = "cuda" if torch.cuda.is_available() else "cpu"
        self._tokenizer = AutoTokenizer.from_pretrained(folder)
        self._model = AutoModelForCausalLM.from_pretrained(folder).to(self._device).eval()
        self._options = {"max_new_tokens": max_tokens, "do_sample": temperature > 0}
        if temperature > 0:
            self._options["temperature"] = temperature

    def stream(self, messages: Messages) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        inputs = self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                     return_dict=True).to(self._device)
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        worker = threading.Thread(target=self._model.generate, daemon=True,
                                  kwargs={**inputs, **self._options, "streamer": streamer,
                                          "pad_token_id": self._tokenizer.eos_token_id})
        worker.start()
        yield from (piece for piece in streamer if piece)
        worker.join()

    def close(self) -> None:
        self._model = None


def backend_stream(spec: ModelSpec, config: EvalConfig, stack: ExitStack) -> OpenAICompatibleStream:
    """The stream of an eval backend entry; an embedded engine it starts is stopped by `stack`."""
    options: dict[str, Any] = {"temperature": spec.temperature, "max_tokens": spec.max_tokens}
    if spec.seed is not None:
        options["seed"] = spec.seed
    key = None
    if spec.backend == "llamacpp":
        engine = EmbeddedEngine(EngineSettings(gguf_path=Path(spec.gguf) if spec.gguf else None, n_parallel=1,
                                               n_ctx=spec.num_ctx, n_threads=spec.threads,
                                               chat_template=spec.chat_template))
        stack.callback(engine.stop)
        base_url = engine.start().base_url
        if spec.structured:
            options["json_schema"] = sentiment_json_schema(config.max_reasoning_chars)
    else:
        if spec.backend == "openai":
            base_url = spec.base_urls[0]
            key = spec.openai_api_key()  # as the openai backend's
        else:  # ollama serves the same API under /v1
            host = spec.host or os.environ.get("OLLAMA_HOST") or config.ollama_host or DEFAULT_OLLAMA_HOST
            base_url = host.rstrip("/") + "/v1"
        if spec.structured:
            options["response_format"] = json_schema_response_format(config.max_reasoning_chars)
    stream = OpenAICompatibleStream(base_url, spec.model, options, key, config.request_timeout_s)
    stack.callback(stream.close)
    return stream


@dataclass
class Answer:
    """A model's whole answer about one text: the validated response (None: `error` says why not)
    and its class at `threshold`."""
    text: str
    raw: str
    threshold: float
    response: SentimentResponse | None
    error: str | None = None

    @classmethod
    def parse(cls, text: str, raw: str, threshold: float) -> "Answer":
        try:
            return cls(text, raw, threshold, parse_sentiment_response(raw))
        except ResponseParseError as exc:
            return cls(text, raw, threshold, None, str(exc))

    @property
    def label(self) -> str:
        return to_class(self.response.sentiment if self.response else None, self.threshold)

    def record(self) -> dict[str, Any]:
        fields = self.response.model_dump() if self.response else dict.fromkeys(SentimentResponse.model_fields)
        return {"text": self.text, "valid": self.response is not None, "label": self.label, **fields,
                "threshold": self.threshold, "error": self.error, "raw": self.raw}

    def summary(self) -> str:
        if self.response is None:
            return f"→ invalid answer: {self.error}"
        r = self.response
        return (f"→ {self.label} (sentiment {r.sentiment:+.2f} at threshold {self.threshold:.2f}, "
                f"confidence {r.confidence:.2f}): {r.reasoning}")


def ask(stream: TokenStream, messages: Messages, text: str, threshold: float,
        on_piece=lambda piece: None) -> Answer:
    """Stream the answer about `text` (each piece to `on_piece` as it arrives), then parse it."""
    pieces = []
    for piece in stream.stream(messages):
        on_piece(piece)
        pieces.append(piece)
    return Answer.parse(text, "".join(pieces), threshold)


def texts_from(arguments: list[str], stdin) -> list[str]:
    """The texts to ask about: the arguments, else stdin's non-blank lines."""
    if arguments:
        return arguments
    if stdin.isatty():
        raise FinsentError("no text: give texts as arguments, or pipe them in one per line")
    texts = [line.strip() for line in stdin if line.strip()]
    if not texts:
        raise FinsentError("no text on stdin (one text per line)")
    return texts


# --- serve ---------------------------------------------------------------------------------

def check_port_free(port: int) -> None:
    """One line if something listens on the port; a port a stopped server left in TIME_WAIT is free
    (SO_REUSEADDR, as llama.cpp's server binds it)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise FinsentError(f"--port {port}: 127.0.0.1:{port} is in use (stop what serves there, "
                               "or pick another port)") from None


def serve(settings: EngineSettings, ready=print) -> None:
    """Run the embedded engine on `settings.port` until SIGINT or SIGTERM."""
    check_port_free(settings.port)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with EmbeddedEngine(settings) as engine:
        ready(f"serving {engine.model_path.name} as model '{settings.model_alias}' at {engine.base_url} "
              f"({settings.n_parallel} slots); Ctrl-C stops")
        while not stop.wait(0.5):
            pass
