"""utils.llm_client: the one client layer step 03's labeller and eval's backends ask servers through,
its rules read on real errors of real clients, and both callers (async labeller, sync eval backend)
following it against a real fault server: a rate limit, a server error, a dropped connection and a
hung request retried, and the wait a server asks for honoured by both."""
from __future__ import annotations

import email.utils
import functools
import socket
import time

import httpx
import openai
import pytest

from dataset_builder.labeller import label_articles
from dataset_builder.label_store import ResultStore
from dataset_builder.news_articles import read_news
from eval.backends import make_backend, parse_model_entry
from eval.settings import EvalConfig
from tests.fault_server import FaultServer, expected_response
from tests.labeller_support import fast_config, numbered_articles, provider, write_export
from utils.errors import FinsentError
from utils.llm_client import (RetryPolicy, api_key, describe_error, is_outage, is_transient, is_transient_status,
                              make_client, retry_after_s)
from utils.prompts import analysis_messages
from utils.schema import parse_sentiment_response


def test_which_statuses_are_worth_another_try():
    assert [code for code in (400, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503, 529)
            if is_transient_status(code)] == [408, 409, 429, 500, 502, 503, 529]


def test_the_wait_a_server_asks_for():
    assert retry_after_s({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_s({"retry-after": "3"}) == 3.0
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < retry_after_s({"retry-after": soon}) <= 30
    assert retry_after_s({}) is None


def test_a_key_is_read_from_the_named_variable_only_and_its_absence_is_named(monkeypatch):
    monkeypatch.setenv("FINSENT_TEST_KEY", " sk-test ")
    assert api_key("FINSENT_TEST_KEY", "provider 'p'") == "sk-test"
    assert api_key(None, "provider 'p'") is None
    monkeypatch.setenv("FINSENT_DEFAULT_KEY", "sk-default")
    assert api_key(None, "model 'm'", default_variable="FINSENT_DEFAULT_KEY") == "sk-default"
    assert api_key("FINSENT_TEST_KEY", "model 'm'", default_variable="FINSENT_DEFAULT_KEY") == "sk-test"
    monkeypatch.delenv("FINSENT_DEFAULT_KEY")
    assert api_key(None, "model 'm'", default_variable="FINSENT_DEFAULT_KEY") is None
    monkeypatch.delenv("FINSENT_TEST_KEY")
    with pytest.raises(FinsentError, match=r"^provider 'p': the environment variable FINSENT_TEST_KEY is not set"):
        api_key("FINSENT_TEST_KEY", "provider 'p'")


def _closed_port_url() -> str:
    with socket.socket() as sock:  # bound, then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def _raised(call) -> BaseException:
    with pytest.raises(Exception) as raised:
        call()
    return raised.value


def test_the_rules_read_real_errors_of_the_sdk_client_and_of_httpx():
    """A status the server gave, no answer at all, and a refusal, each as its client raises it."""
    messages = analysis_messages("Company 0 reports.")
    with FaultServer(plan={"Company 0": ["server_error_503", "rate_limit", "unauthorized"]}, retry_after_s=0) as server:
        client = make_client("openai", None, timeout_s=2.0, base_url=server.base_url)
        ask = functools.partial(client.chat.completions.create, model="test-model", messages=messages)
        unavailable, limited, refused = _raised(ask), _raised(ask), _raised(ask)
        client.close()
        requests = len(server.seen)
    unreachable = make_client("openai", None, timeout_s=2.0, base_url=_closed_port_url())
    gone = _raised(functools.partial(unreachable.chat.completions.create, model="test-model", messages=messages))
    unreachable.close()
    http_gone = _raised(lambda: httpx.get(_closed_port_url()))
    assert requests == 3  # the SDK's own retries are off: one request a call
    assert isinstance(gone, openai.APIConnectionError) and isinstance(http_gone, httpx.ConnectError)
    assert [is_transient(e) for e in (unavailable, limited, refused, gone, http_gone)] == [True, True, False, True, True]
    assert [is_outage(e) for e in (unavailable, limited, refused, gone, http_gone)] == [True, False, False, True, True]
    assert [describe_error(e) for e in (unavailable, refused, gone)] == [
        "HTTP 503 (InternalServerError)", "HTTP 401 (AuthenticationError)", "connection error"]


def _label_and_evaluate(tmp_path, server, text: str):
    """One article through step 03's labeller and `text` through eval's openai backend, at `server`."""
    articles = read_news(write_export(tmp_path / "n.csv", numbered_articles(1)))
    store = ResultStore(tmp_path / "labels.jsonl")
    summary = label_articles(articles, store, fast_config([provider("openai", server, timeout_s=1.0)]),
                             show_progress=False)
    store.close()
    config = EvalConfig(request_retries=1, request_timeout_s=1.0)
    backend = make_backend(parse_model_entry({"backend": "openai", "model": "test-model",
                                              "base_urls": [server.base_url]}, 1, config), config)
    try:
        return summary, parse_sentiment_response(backend.complete(analysis_messages(text)))
    finally:
        backend.close()


@pytest.mark.parametrize("fault", ["rate_limit", "server_error_503", "disconnect", "hang"])
def test_both_stacks_retry_what_the_rules_call_transient(tmp_path, fault):
    text = "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn."
    with FaultServer(plan={"Company 0": [fault], "Operating profit": [fault]}, retry_after_s=0) as server:
        summary, answer = _label_and_evaluate(tmp_path, server, text)
        attempts = sorted(request.attempt for request in server.seen)
    assert summary.ok == 1 and answer.sentiment == expected_response(text)["sentiment"]
    assert attempts == [1, 1, 2, 2]


def test_both_stacks_wait_what_the_server_asks_for(tmp_path):
    text = "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn."
    with FaultServer(plan={"Company 0": ["rate_limit"], "Operating profit": ["rate_limit"]}, retry_after_s=1) as server:
        summary, answer = _label_and_evaluate(tmp_path, server, text)
        labeller_arrivals = [r.at for r in server.seen if "Company 0" in r.article]
        eval_arrivals = [r.at for r in server.seen if "Operating profit" in r.article]
    assert summary.ok == 1 and answer.sentiment == expected_response(text)["sentiment"]
    # backoff alone waits 0.02-0.04 s (the labeller's test config) and 0.5-1 s (eval's); the server asked for 1 s
    assert labeller_arrivals[1] - labeller_arrivals[0] >= 1.0
    assert eval_arrivals[1] - eval_arrivals[0] >= 1.0


def test_a_server_asking_for_longer_than_the_cap_is_waited_on_for_the_cap(tmp_path):
    policy = RetryPolicy(attempts=2, backoff_initial_s=0.01, backoff_max_s=0.01, retry_after_max_s=0.2)
    messages = analysis_messages("Company 0 reports.")
    with FaultServer(plan={"Company 0": ["rate_limit"]}, retry_after_s=30) as server:
        client = make_client("openai", None, timeout_s=2.0, base_url=server.base_url)
        started = time.monotonic()
        for attempt in policy.retrying():
            with attempt:
                client.chat.completions.create(model="test-model", messages=messages)
        waited = time.monotonic() - started
        client.close()
        attempts = [r.attempt for r in server.seen]
    assert attempts == [1, 2] and waited < 5  # 0.2 s (+ jitter), not the 30 s asked
