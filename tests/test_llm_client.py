"""utils.llm_http: the one set of rules step 03's labeller and eval's backends ask servers by, and
both stacks following it against a real fault server (a rate limit and a server error retried)."""
from __future__ import annotations

import email.utils
import time

import pytest

from dataset_builder.labeller import label_articles
from dataset_builder.label_store import ResultStore
from dataset_builder.news_articles import read_news
from eval.backends import make_backend, parse_model_entry
from eval.settings import EvalConfig
from tests.fault_server import FaultServer, expected_response
from tests.labeller_support import fast_config, numbered_articles, provider, write_export
from utils.errors import FinsentError
from utils.llm_client import api_key, is_transient_status, retry_after_s
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
    monkeypatch.delenv("FINSENT_TEST_KEY")
    with pytest.raises(FinsentError, match=r"^provider 'p': the environment variable FINSENT_TEST_KEY is not set"):
        api_key("FINSENT_TEST_KEY", "provider 'p'")


@pytest.mark.parametrize("fault", ["rate_limit", "server_error_503"])
def test_both_stacks_retry_what_the_rules_call_transient(tmp_path, fault):
    text = "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn."
    articles = read_news(write_export(tmp_path / "n.csv", numbered_articles(1)))
    with FaultServer(plan={"Company 0": [fault], "Operating profit": [fault]}, retry_after_s=0) as server:
        store = ResultStore(tmp_path / "labels.jsonl")
        summary = label_articles(articles, store, fast_config([provider("openai", server)]), show_progress=False)
        store.close()
        config = EvalConfig(request_retries=1)
        backend = make_backend(parse_model_entry({"backend": "openai", "model": "test-model",
                                                  "base_urls": [server.base_url]}, 1, config), config)
        answer = parse_sentiment_response(backend.complete(analysis_messages(text)))
        backend.close()
        attempts = sorted(request.attempt for request in server.seen)
    assert summary.ok == 1 and answer.sentiment == expected_response(text)["sentiment"]
    assert attempts == [1, 1, 2, 2]
