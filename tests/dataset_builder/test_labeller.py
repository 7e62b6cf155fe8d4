"""Step 03's labeller against a real fault-injecting HTTP server, through the real openai
and groq clients: every fault ends labelled or recorded failed with its reason, none twice."""
from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from dataset_builder.label_store import ResultStore
from dataset_builder.labeller import label_articles
from dataset_builder.news_articles import read_news
from dataset_builder.providers import ProviderAuthError, ProviderPool
from tests.fault_server import FaultServer, expected_response
from tests.labeller_support import fast_config, numbered_articles, provider, write_export
from utils.errors import FinsentError
from utils.schema import SentimentResponse

# One article per fault; each expected outcome follows from the labeller's contract.
FAULT_PLAN = {
    "Rate limited": ["rate_limit"],
    "Server error": ["server_error_500", "server_error_503"],
    "Hung connection": ["hang"],
    "Dropped connection": ["disconnect"],
    "Truncated answer": ["truncated_json"],
    "Prose answer": ["prose_json"],
    "Fenced answer": ["fenced_json"],
    "Out of range": ["schema_sentiment"],
    "Missing field": ["schema_missing"],
    "Always out of range": ["schema_sentiment"] * 10,
    "Always missing": ["schema_missing"] * 10,
    "Always down": ["server_error_503"] * 10,
    "Always hung": ["hang"] * 10,
}
FAILS_WITH = {  # article -> words its failure reason must hold
    "Always out of range": "sentiment",
    "Always missing": "confidence",
    "Always down": "HTTP 503",
    "Always hung": "timeout",
}


def _articles(tmp_path: Path, extra_clean: int = 5):
    rows = [(title, f"{title} is what the fault server does to this one.") for title in FAULT_PLAN]
    rows += numbered_articles(extra_clean)
    return read_news(write_export(tmp_path / "news" / "export.csv", rows))


def _check_one_record_each(store: ResultStore, articles) -> None:
    lines = [line for line in store.path.read_text(encoding="utf-8").splitlines() if line]
    ids = Counter(json.loads(line)["id"] for line in lines)
    assert set(ids) == {a.id for a in articles}
    assert max(ids.values()) == 1, "an article was recorded twice"


@pytest.mark.parametrize("kind", ["openai", "groq"])
def test_every_fault_ends_labelled_or_failed_with_reason(tmp_path, kind):
    articles = _articles(tmp_path)
    with FaultServer(plan=FAULT_PLAN, retry_after_s=1) as server:
        config = fast_config([provider(kind, server, timeout_s=0.5)], max_retries=2, max_reasks=2)
        store = ResultStore(tmp_path / "labels.jsonl")
        summary = label_articles(articles, store, config, show_progress=False)
        store.close()
    _check_one_record_each(store, articles)
    assert (summary.ok, summary.failed) == (len(articles) - len(FAILS_WITH), len(FAILS_WITH))
    for article in articles:
        record = store.records[article.id]
        title = next((t for t in FAULT_PLAN if article.text.startswith(t)), None)
        if title in FAILS_WITH:
            assert record["status"] == "failed" and record["response"] is None
            assert FAILS_WITH[title] in record["reason"], record["reason"]
        else:
            assert record["status"] == "ok", (title, record["reason"])
            assert record["response"] == expected_response(article.text)
        assert record["provider"] == kind and record["model"] == "test-model"
        assert record["requests"] >= record["attempts"] >= 1
    by_title = {t: store.records[a.id] for a in articles for t in FAULT_PLAN if a.text.startswith(t)}
    assert by_title["Truncated answer"]["attempts"] == 2  # re-asked once
    assert by_title["Always out of range"]["attempts"] == 3  # 1 + max_reasks, then failed
    assert by_title["Always down"]["requests"] == 3  # 1 + max_retries, then failed
    assert by_title["Prose answer"]["attempts"] == by_title["Fenced answer"]["attempts"] == 1
    assert by_title["Server error"]["requests"] == 3
    assert summary.usage[kind].prompt_tokens > 0


def test_retry_after_is_honoured(tmp_path):
    articles = read_news(write_export(tmp_path / "n.csv", [("Rate limited twice", "Slow down.")]))
    with FaultServer(plan={"Rate limited": ["rate_limit", "rate_limit"]}, retry_after_s=1) as server:
        store = ResultStore(tmp_path / "labels.jsonl")
        label_articles(articles, store, fast_config([provider("openai", server)]), show_progress=False)
        arrivals = [r.at for r in server.seen]
    assert store.records[articles[0].id]["status"] == "ok"
    assert len(arrivals) == 3
    # backoff alone would wait ~0.02-0.1 s; the server asked for 1 s each time
    assert arrivals[1] - arrivals[0] >= 1.0 and arrivals[2] - arrivals[1] >= 1.0


@pytest.mark.parametrize("kind", ["openai", "groq"])
def test_unauthorized_stops_the_run_with_a_clear_error(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("FINSENT_TEST_KEY", "sk-wrong-secret-123")
    articles = read_news(write_export(tmp_path / "n.csv", numbered_articles(30)))
    with FaultServer(required_api_key="sk-right") as server:
        config = fast_config([provider(kind, server, api_key_env="FINSENT_TEST_KEY")])
        store = ResultStore(tmp_path / "labels.jsonl")
        with pytest.raises(ProviderAuthError) as raised:
            label_articles(articles, store, config, show_progress=False)
        store.close()
        requests = len(server.seen)
    message = str(raised.value)
    assert "HTTP 401" in message and "FINSENT_TEST_KEY" in message and kind in message
    assert "sk-wrong-secret-123" not in message and "\n" not in message
    assert requests <= config.max_in_flight  # stopped at once: no retries, no further articles
    assert store.records == {} or all(r["status"] == "ok" for r in store.records.values())


def test_forbidden_stops_the_run(tmp_path):
    articles = read_news(write_export(tmp_path / "n.csv", [("No access here", "Model is private.")]))
    with FaultServer(plan={"No access": ["forbidden"]}) as server:
        with pytest.raises(ProviderAuthError, match="HTTP 403"):
            label_articles(articles, ResultStore(tmp_path / "l.jsonl"),
                           fast_config([provider("openai", server)]), show_progress=False)


def test_in_flight_requests_are_bounded(tmp_path):
    articles = read_news(write_export(tmp_path / "n.csv", numbered_articles(40)))
    with FaultServer(latency_s=0.1) as server:
        store = ResultStore(tmp_path / "labels.jsonl")
        label_articles(articles, store, fast_config([provider("openai", server)], max_in_flight=5),
                       show_progress=False)
        peak = server.peak_in_flight
    assert peak == 5
    assert all(r["status"] == "ok" for r in store.records.values()) and len(store.records) == 40


def _span(server: FaultServer, started: float) -> float:
    """From the call's start (when the limiter's bucket is full) to the last request's arrival.
    Not from the first arrival: that one comes late by the first connection's setup."""
    return max(r.at for r in server.seen) - started


def test_requests_per_minute_limit(tmp_path):
    # 600/min = 10/s with a 5 s burst of 50: the 65th request cannot arrive before 1.5 s.
    articles = read_news(write_export(tmp_path / "n.csv", numbered_articles(65)))
    with FaultServer() as server:
        config = fast_config([provider("openai", server, requests_per_minute=600)], max_in_flight=16)
        started = time.monotonic()
        label_articles(articles, ResultStore(tmp_path / "l.jsonl"), config, show_progress=False)
        assert len(server.seen) == 65
        assert _span(server, started) >= (65 - 50) / 10 * 0.95


def test_tokens_per_minute_limit(tmp_path):
    articles = read_news(write_export(tmp_path / "n.csv", numbered_articles(60)))
    tokens_per_s = 4000
    with FaultServer() as server:
        config = fast_config([provider("openai", server, tokens_per_minute=tokens_per_s * 60)],
                             max_in_flight=16)
        store = ResultStore(tmp_path / "l.jsonl")
        started = time.monotonic()
        label_articles(articles, store, config, show_progress=False)
        span = _span(server, started)
    used = sorted(r["prompt_tokens"] + r["completion_tokens"] for r in store.records.values())
    # the bucket holds 5 s of budget; all but the last request had to fit in it plus the refill
    least = (sum(used[:-1]) - 5 * tokens_per_s) / tokens_per_s
    assert least > 1.0  # the limit really binds in this test
    assert span >= least * 0.95


def test_round_robin_over_providers_and_models(tmp_path):
    articles = read_news(write_export(tmp_path / "n.csv", numbered_articles(12)))
    with FaultServer() as first, FaultServer() as second:
        providers = [provider("openai", first, name="one", models=["a", "b"]),
                     provider("groq", second, name="two", models=["c"])]
        store = ResultStore(tmp_path / "l.jsonl")
        summary = label_articles(articles, store, fast_config(providers), show_progress=False)
        assert len(first.seen) == 8 and len(second.seen) == 4
    assert Counter(r["model"] for r in store.records.values()) == {"a": 4, "b": 4, "c": 4}
    assert summary.usage["one"].ok == 8 and summary.usage["two"].ok == 4


def test_weighted_choice_follows_the_weights():
    config = fast_config([{"name": "local", "base_url": "http://127.0.0.1:9/v1",
                           "models": [{"name": "big", "weight": 1}, {"name": "small", "weight": 3}]}],
                         strategy="weighted")
    pool = ProviderPool(config)
    picks = [pool.next_lane().model for _ in range(8)]
    assert Counter(picks) == {"small": 6, "big": 2}
    assert picks[:4].count("big") == 1  # interleaved, not in runs


def test_cost_summary_uses_the_configured_prices(tmp_path):
    articles = read_news(write_export(tmp_path / "n.csv", numbered_articles(3)))
    with FaultServer() as server:
        config = fast_config([provider("openai", server, price_input_per_million=2.0,
                                       price_output_per_million=10.0)])
        summary = label_articles(articles, ResultStore(tmp_path / "l.jsonl"), config, show_progress=False)
    usage = summary.usage["openai"]
    expected = (usage.prompt_tokens * 2.0 + usage.completion_tokens * 10.0) / 1e6
    assert usage.cost(config.providers[0]) == pytest.approx(expected) and expected > 0
    assert f"${expected:.4f}" in "\n".join(summary.lines())


def test_rerun_skips_done_articles_and_a_torn_line_is_dropped(tmp_path):
    articles = read_news(write_export(tmp_path / "n.csv", numbered_articles(10)))
    path = tmp_path / "labels.jsonl"
    with FaultServer() as server:
        config = fast_config([provider("openai", server)])
        store = ResultStore(path)
        label_articles(articles[:6], store, config, show_progress=False)
        store.close()
        with open(path, "a", encoding="utf-8") as handle:  # what a kill -9 mid-write leaves
            handle.write('{"id": "' + articles[6].id + '", "status": "o')
        store = ResultStore(path)
        todo = store.pending(articles)
        assert [a.id for a in todo] == [a.id for a in articles[6:]]
        seen_before = len(server.seen)
        label_articles(todo, store, config, show_progress=False)
        store.close()
        assert len(server.seen) - seen_before == 4
    _check_one_record_each(ResultStore(path), articles)
    for text, response in ResultStore(path).ok_rows(articles):
        SentimentResponse.model_validate(response)


def test_a_corrupt_record_inside_the_results_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "labels.jsonl"
    good = '{"id": "a", "status": "ok", "article": "x", "response": null}'
    path.write_text(f"{good}\nnot json at all\n{good}\n", encoding="utf-8")
    before = path.read_bytes()
    with pytest.raises(FinsentError, match=r"labels.jsonl: line 2 is not valid JSON"):
        ResultStore(path)
    assert path.read_bytes() == before  # left for the user to inspect, not repaired away
    path.write_text('{"id": "a"}\n', encoding="utf-8")
    with pytest.raises(FinsentError, match=r"labels.jsonl: record 1 is not a step 03 record"):
        ResultStore(path)


def test_a_dead_provider_is_dropped_and_the_others_carry_on(tmp_path, caplog):
    articles = read_news(write_export(tmp_path / "n.csv", numbered_articles(30)))
    dead = {"name": "dead", "base_url": "http://127.0.0.1:1/v1", "models": ["m"], "timeout_s": 1.0}
    with FaultServer() as server:
        config = fast_config([dead, provider("openai", server, name="alive")], max_consecutive_failures=5)
        store = ResultStore(tmp_path / "labels.jsonl")
        summary = label_articles(articles, store, config, show_progress=False)
        store.close()
    _check_one_record_each(store, articles)
    assert summary.ok == 30 and summary.usage["alive"].ok == 30  # the dead one's articles moved
    # dropped at the 5th outage in a row; only requests already in flight then came after
    assert 5 <= summary.usage["dead"].requests < 5 + config.max_in_flight
    [warning] = [r.getMessage() for r in caplog.records if "in a row failed" in r.getMessage()]
    assert "provider 'dead' at http://127.0.0.1:1/v1" in warning and "dropped" in warning


def test_outages_count_only_in_a_row(tmp_path):
    # Every other request fails with a 503: the provider answers, so it is never dropped.
    articles = read_news(write_export(tmp_path / "n.csv", [(f"Flaky {n}", "Up and down.") for n in range(12)]))
    with FaultServer(plan={f"Flaky {n}.": ["server_error_503"] for n in range(12)}) as server:
        config = fast_config([provider("openai", server)], max_consecutive_failures=2, max_in_flight=1)
        summary = label_articles(articles, ResultStore(tmp_path / "l.jsonl"), config, show_progress=False)
    assert summary.ok == 12 and summary.usage["openai"].requests == 24


def test_a_record_without_its_newline_is_not_done(tmp_path):
    articles = read_news(write_export(tmp_path / "n.csv", numbered_articles(2)))
    path = tmp_path / "labels.jsonl"
    record = {"id": articles[1].id, "status": "ok", "article": articles[1].text,
              "response": expected_response(articles[1].text)}
    path.write_text(json.dumps(record), encoding="utf-8")  # killed before the newline
    assert [a.id for a in ResultStore(path).pending(articles)] == [a.id for a in articles]
