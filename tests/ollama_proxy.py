"""An Ollama-API server for tests: /api/tags, /api/chat and /api/generate as Ollama documents
them (https://github.com/ollama/ollama/blob/main/docs/api.md), answered by a real llama.cpp
server behind it (the embedded engine). No Ollama binary can be installed here; this lets the
`ollama` backend run through the real `ollama` client against a real model.

    with OllamaProxy(engine.base_url, models=["gemma3:270m"]) as proxy:
        ollama.Client(host=proxy.host).chat(model="gemma3:270m", messages=[...])

`proxy.requests` records (path, body) of every request, for assertions.
"""
from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class OllamaProxy:
    def __init__(self, upstream: str, models: list[str]):
        self.upstream = upstream.rstrip("/")  # …/v1 of an OpenAI-compatible llama.cpp server
        self.models = list(models)
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "OllamaProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _known(self, name: str) -> bool:
        return name in self.models or f"{name}:latest" in self.models

    def _complete(self, body: dict[str, Any], messages: list[dict[str, str]]) -> tuple[str, str]:
        options = body.get("options") or {}
        request: dict[str, Any] = {"messages": messages, "temperature": options.get("temperature", 0.8),
                                   "max_tokens": options.get("num_predict", 128)}
        if "seed" in options:
            request["seed"] = options["seed"]
        fmt = body.get("format")
        if isinstance(fmt, dict):
            request["json_schema"] = fmt
        elif fmt == "json":
            request["response_format"] = {"type": "json_object"}
        reply = httpx.post(f"{self.upstream}/chat/completions", json=request, timeout=600).json()
        choice = reply["choices"][0]
        return choice["message"]["content"] or "", "length" if choice["finish_reason"] == "length" else "stop"

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet test output
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                proxy.requests.append((self.path, {}))
                if self.path == "/api/tags":
                    self._send(200, {"models": [{"name": m, "model": m, "modified_at": _now(), "size": 253_000_000,
                                                 "digest": "0" * 64, "details": {"format": "gguf", "family": "gemma3"}}
                                                for m in proxy.models]})
                elif self.path == "/api/version":
                    self._send(200, {"version": "0.12.0"})
                else:
                    self._send(404, {"error": f"404 page not found: {self.path}"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                proxy.requests.append((self.path, body))
                model = body.get("model", "")
                if self.path not in ("/api/chat", "/api/generate"):
                    return self._send(404, {"error": f"404 page not found: {self.path}"})
                if not proxy._known(model):
                    return self._send(404, {"error": f"model '{model}' not found"})
                if self.path == "/api/generate":
                    if not body.get("prompt"):  # Ollama's documented "load the model" call
                        return self._send(200, {"model": model, "created_at": _now(), "response": "",
                                                "done": True, "done_reason": "load"})
                    messages = ([{"role": "system", "content": body["system"]}] if body.get("system") else [])
                    text, reason = proxy._complete(body, messages + [{"role": "user", "content": body["prompt"]}])
                    return self._send(200, {"model": model, "created_at": _now(), "response": text,
                                            "done": True, "done_reason": reason})
                text, reason = proxy._complete(body, body.get("messages") or [])
                self._send(200, {"model": model, "created_at": _now(),
                                 "message": {"role": "assistant", "content": text},
                                 "done": True, "done_reason": reason})

        return Handler
