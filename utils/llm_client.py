"""The one client layer every stage asks LLM servers through: step 03's labeller and batch labeller
(async, official `openai`/`groq` SDK clients) and eval's backends (sync: the `openai` SDK for
OpenAI-compatible servers, `ollama`'s client, httpx to llama.cpp). Here, once:

* which failures are worth another try (a timeout, a conflict, a rate limit, a server error, a
  dropped connection), what counts as an outage, and the one line that describes a failure;
* the wait before a retry: what the server asked for (retry-after-ms / Retry-After, capped), else
  exponential backoff with jitter; the same `RetryPolicy` for sync and async callers (tenacity);
* where a key comes from: the environment variable a config names (the scripts load `.env` into
  the environment, once: finsent.cli), never the config itself, never printed;
* the SDK clients, built with their own retries off (ours honour Retry-After) and a timeout.

The SDKs are imported only when a client is made (they take a second or more to import, and eval's
ollama and llama.cpp backends never need them)."""
from __future__ import annotations

import email.utils
import os
import random
import sys
import time
from dataclasses import dataclass
from typing import Any, Literal, Mapping

import httpx
from tenacity import AsyncRetrying, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from utils.errors import FinsentError

# A request timeout, a conflict and a rate limit: the same request may succeed later. So may any 5xx.
TRANSIENT_STATUSES = frozenset({408, 409, 429})
# What a client without an SDK raises when the server is not there (ollama's client: ConnectionError).
TRANSPORT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, ConnectionError)
# A server that needs no key (a local llama.cpp or vLLM) still gets one: the SDKs refuse to start without.
NO_KEY = "no-key-needed"
Sdk = Literal["openai", "groq"]
SDKS: tuple[Sdk, ...] = ("openai", "groq")  # generated from one template: the same error classes in each


def is_transient_status(code: int) -> bool:
    """An HTTP status worth another try: a timeout, a conflict, a rate limit, a server error."""
    return code in TRANSIENT_STATUSES or code >= 500


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The wait a server asked for (retry-after-ms, else Retry-After in seconds or as an HTTP date)."""
    if milliseconds := headers.get("retry-after-ms"):
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        moment = email.utils.parsedate_to_datetime(value)  # an HTTP date
        return max(0.0, moment.timestamp() - time.time()) if moment else None


def api_key(variable: str | None, who: str, default_variable: str | None = None) -> str | None:
    """The key in environment variable `variable` (`.env` is in the environment already:
    finsent.cli). A named variable that is unset or empty is an error naming `who` and the
    variable, never the value. No variable named: `default_variable`'s key where it is set, else
    None (a server that takes any key)."""
    if not variable:
        fallback = os.environ.get(default_variable, "").strip() if default_variable else ""
        return fallback or None
    key = os.environ.get(variable, "").strip()
    if not key:
        raise FinsentError(f"{who}: the environment variable {variable} is not set (set it or put it in .env)")
    return key


# --- failures ---------------------------------------------------------------------------------------
def sdk_errors(name: str = "APIError") -> tuple[type[BaseException], ...]:
    """Error class `name` (APIError, APIStatusError, APIConnectionError, APITimeoutError) of each SDK
    already imported: an SDK's error can only come from a loaded SDK, so none is imported here.
    `except sdk_errors()` catches whatever a client's call raises."""
    return tuple(getattr(module, name) for sdk in SDKS if (module := sys.modules.get(sdk)))


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of the answer that raised `exc` (an SDK's, ollama's or httpx's error), if any."""
    code = getattr(exc, "status_code", None)
    if code is None:
        code = getattr(getattr(exc, "response", None), "status_code", None)
    return code if isinstance(code, int) else None


def is_connection_error(exc: BaseException) -> bool:
    """No answer at all: refused, dropped or timed out (the SDKs' timeout is a connection error)."""
    return isinstance(exc, (*TRANSPORT_ERRORS, *sdk_errors("APIConnectionError")))


def is_transient(exc: BaseException) -> bool:
    """Worth another try after a wait: no answer, or a transient status (is_transient_status)."""
    if is_connection_error(exc):
        return True
    code = status_code(exc)
    return code is not None and is_transient_status(code)


def is_outage(exc: BaseException) -> bool:
    """No answer or a 5xx: the server is not there (a 429 says it is)."""
    code = status_code(exc)
    return is_connection_error(exc) or (code is not None and code >= 500)


def describe_error(exc: BaseException) -> str:
    """One line for a message or a record's `reason`; never the request (which holds no key anyway)."""
    code = status_code(exc)
    if code is not None:
        return f"HTTP {code} ({type(exc).__name__})"
    if isinstance(exc, (httpx.TimeoutException, *sdk_errors("APITimeoutError"))):
        return "timeout: no answer in time"
    if is_connection_error(exc):
        return "connection error"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def asked_wait_s(exc: BaseException) -> float | None:
    """The wait the server asked for in the answer that raised `exc` (retry_after_s)."""
    response = getattr(exc, "response", None)
    return None if response is None else retry_after_s(response.headers)


# --- retries ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """Transient failures (is_transient) tried again, up to `attempts` tries in all, after the wait
    the server asked for (at most `retry_after_max_s`, plus a little jitter so that the clients it
    told to wait do not all come back at once), else exponential backoff with jitter."""

    attempts: int
    backoff_initial_s: float
    backoff_max_s: float
    retry_after_max_s: float = 120.0  # a server asking for longer is waited on no longer than this

    def wait_s(self, state) -> float:
        """The wait before the next try, for tenacity's `wait`."""
        asked = asked_wait_s(state.outcome.exception())
        if asked is None:
            return wait_exponential_jitter(multiplier=self.backoff_initial_s, max=self.backoff_max_s,
                                           jitter=self.backoff_initial_s)(state)
        asked = min(asked, self.retry_after_max_s)
        return asked + random.uniform(0, min(1.0, 0.1 * asked + 0.01))

    def _options(self) -> dict[str, Any]:
        return {"retry": retry_if_exception(is_transient), "wait": self.wait_s,
                "stop": stop_after_attempt(self.attempts), "reraise": True}

    def retrying(self) -> Retrying:
        """For sync callers: `for attempt in policy.retrying(): with attempt: ...`, or as a decorator."""
        return Retrying(**self._options())

    def async_retrying(self) -> AsyncRetrying:
        """For async callers: `async for attempt in policy.async_retrying(): with attempt: ...`."""
        return AsyncRetrying(**self._options())


# --- clients ----------------------------------------------------------------------------------------
def make_client(sdk: Sdk, key: str | None, timeout_s: float, base_url: str | None = None,
                asynchronous: bool = False) -> Any:
    """The official `sdk` client (sync or async) at `base_url` (None: the SDK's own endpoint), its
    own retries off: the caller retries by a RetryPolicy, which honours Retry-After."""
    options: dict[str, Any] = {"api_key": key or NO_KEY, "timeout": timeout_s, "max_retries": 0}
    if base_url:
        options["base_url"] = base_url
    if sdk == "groq":
        import groq

        return (groq.AsyncGroq if asynchronous else groq.Groq)(**options)
    import openai

    return (openai.AsyncOpenAI if asynchronous else openai.OpenAI)(**options)
