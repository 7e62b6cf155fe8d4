"""Step 03 through the Batch API, against the fault server's real Batch API endpoints through
the official openai and groq clients: faults in the output, the error file, an expired batch,
a split over the size limit, a 401, and a kill -9 while polling that must not pay twice."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter

import pytest

from dataset_builder.batch_labeller import label_in_batches, split_requests
from dataset_builder.label_store import ResultStore
from dataset_builder.provider_calls import ProviderGone
from dataset_builder.news_articles import read_news
from dataset_builder.providers import ProviderAuthError
from tests.conftest import REPO_ROOT, run_script, script_env
from tests.fault_server import FaultServer, expected_response
from tests.labeller_support import fast_config, numbered_articles, provider, write_config, write_export
from utils.errors import FinsentError

SCRIPT = "dataset_builder/step_03_label_articles.py"
BATCH_JOBS = "dataset_builder/batch_jobs.py"
BATCH_PLAN = {
    "Truncated answer": ["truncated_json"],  # invalid in the batch, valid when re-asked
    "Out of range": ["schema_sentiment", "schema_sentiment", "schema_sentiment"],  # invalid each time
    "Server error": ["server_error_500"],  # in the error file: asked again synchronously
    "Broken line": ["broken_output_line"],  # an output line that is not JSON
}


def _batch_config(providers, **extra):
    return fast_config(providers, batch_poll_initial_s=0.05, batch_poll_max_s=0.2, **extra)


def _news(tmp_path, rows):
    return read_news(write_export(tmp_path / "news" / "export.csv", rows))


def _one_record_each(path, articles) -> dict[str, dict]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    records = [line for line in lines if line.get("kind") != "batch"]
    ids = Counter(record["id"] for record in records)
    assert set(ids) == {a.id for a in articles} and max(ids.values()) == 1
    return {record["id"]: record for record in records}


@pytest.mark.parametrize("kind", ["openai", "groq"])
def test_batch_answers_are_validated_and_recorded_once(tmp_path, kind):
    rows = [(title, f"{title} is what the batch does to this one.") for title in BATCH_PLAN]
    articles = _news(tmp_path, rows + numbered_articles(4))
    with FaultServer(plan=BATCH_PLAN) as server:
        config = _batch_config([provider(kind, server, price_input_per_million=2.0,
                                         price_output_per_million=10.0)], max_reasks=2)
        store = ResultStore(tmp_path / "labels.jsonl")
        summary = label_in_batches(articles, articles, store, config, show_progress=False,
                                   batch_everything=True)
        store.close()
        assert server.batches_created == 1
        [batch_id] = server.batches
        direct = [r for r in server.seen if not r.path.startswith("batch")]
    records = _one_record_each(store.path, articles)
    by_title = {title: records[a.id] for a in articles for title in BATCH_PLAN if a.text.startswith(title)}
    assert by_title["Truncated answer"]["status"] == "ok"
    assert (by_title["Truncated answer"]["attempts"], by_title["Truncated answer"]["requests"]) == (2, 2)
    assert by_title["Out of range"]["status"] == "failed" and "sentiment" in by_title["Out of range"]["reason"]
    assert by_title["Out of range"]["attempts"] == 3  # the batch's answer, then max_reasks re-asks
    assert by_title["Server error"]["status"] == "ok" and by_title["Server error"]["requests"] == 1
    assert "not answered" in by_title["Broken line"]["reason"]
    assert len(direct) == 1 + 2 + 1  # only the re-asks and the 500 went out synchronously
    for article in articles:
        record = records[article.id]
        assert record["batch_id"] == batch_id and record["provider"] == kind
        if record["status"] == "ok":
            assert record["response"] == expected_response(article.text)
    assert (summary.ok, summary.failed) == (len(articles) - 2, 2)
    usage = summary.usage[kind]
    assert usage.batch_requests == len(articles) - 2 and usage.requests == 4  # two not answered in the batch
    full = ((usage.prompt_tokens + usage.batch_prompt_tokens) * 2.0
            + (usage.completion_tokens + usage.batch_completion_tokens) * 10.0) / 1e6
    discounted = full - 0.5 * (usage.batch_prompt_tokens * 2.0 + usage.batch_completion_tokens * 10.0) / 1e6
    assert usage.cost(config.providers[0]) == pytest.approx(discounted) and discounted < full
    batch = next(iter(ResultStore(store.path).batches.values()))
    assert batch["state"] == "collected" and batch["status"] == "completed"


def test_an_expired_batch_records_what_it_answered_and_fails_the_rest(tmp_path):
    articles = _news(tmp_path, numbered_articles(6))
    with FaultServer(batch_expire_after=4) as server:
        store = ResultStore(tmp_path / "labels.jsonl")
        summary = label_in_batches(articles, articles, store, _batch_config([provider("openai", server)]),
                                   show_progress=False, batch_everything=True)
        store.close()
    records = _one_record_each(store.path, articles)
    assert (summary.ok, summary.failed) == (4, 2)
    failed = [records[a.id] for a in articles[4:]]
    assert all(r["status"] == "failed" and "batch_expired" in r["reason"] for r in failed)
    # --retry-failed --batch asks again for those two only, in a second batch
    again = ResultStore(store.path)
    todo = again.pending(articles, retry_failed=True)
    assert [a.id for a in todo] == [a.id for a in articles[4:]]
    with FaultServer() as server:
        label_in_batches(articles, todo, again, _batch_config([provider("openai", server)]),
                         show_progress=False, batch_everything=True)
        again.close()
        assert server.batch_requests_answered == 2
    assert all(r["status"] == "ok" for r in _one_record_each(store.path, articles).values())


def test_batches_over_the_limit_are_split(tmp_path):
    articles = _news(tmp_path, numbered_articles(10))
    with FaultServer(max_batch_requests=4) as server:  # a bigger batch would fail validation
        store = ResultStore(tmp_path / "labels.jsonl")
        summary = label_in_batches(articles, articles, store,
                                   _batch_config([provider("openai", server)], batch_max_requests=4),
                                   show_progress=False, batch_everything=True)
        store.close()
        assert server.batches_created == 3
    assert summary.ok == 10
    assert sorted(len(b["ids"]) for b in ResultStore(store.path).batches.values()) == [2, 4, 4]


def test_split_requests_keeps_each_file_under_the_byte_limit():
    lines = [{"custom_id": str(n), "body": {"text": "x" * 100}} for n in range(10)]
    chunks = split_requests(lines, max_requests=100, max_bytes=450)
    assert [len(chunk) for chunk in chunks] == [3, 3, 3, 1]
    assert all(sum(map(len, chunk)) <= 450 for chunk in chunks)
    with pytest.raises(FinsentError, match="article 0: its batch request is"):
        split_requests(lines, max_requests=100, max_bytes=50)


def test_a_wrong_key_stops_the_batch_run_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("FINSENT_TEST_KEY", "sk-wrong-secret-123")
    articles = _news(tmp_path, numbered_articles(3))
    with FaultServer(required_api_key="sk-right") as server:
        config = _batch_config([provider("openai", server, api_key_env="FINSENT_TEST_KEY")])
        with pytest.raises(ProviderAuthError) as raised:
            label_in_batches(articles, articles, ResultStore(tmp_path / "l.jsonl"), config,
                             show_progress=False, batch_everything=True)
        assert server.batches_created == 0
    assert "HTTP 401" in str(raised.value) and "sk-wrong-secret-123" not in str(raised.value)


def _records(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.endswith("}")]


def test_kill_while_polling_then_status_cancel_and_resume_without_a_new_batch(tmp_path):
    news = write_export(tmp_path / "news" / "export.csv", numbered_articles(8))
    results, output = tmp_path / "labels.jsonl", tmp_path / "news.csv"
    with FaultServer(batch_request_s=3600) as server:  # held in progress until released
        config = write_config(tmp_path / "config.yaml", _batch_config([provider("openai", server)]))
        args = ["--config", config, "--input", news, "--results", results, "--output", output,
                "--no-progress"]
        command = [sys.executable, str(REPO_ROOT / SCRIPT), *map(str, args), "--batch"]
        process = subprocess.Popen(command, cwd=tmp_path, env=script_env(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                r.get("state") == "submitted" for r in (_records(results) if results.exists() else [])):
            assert process.poll() is None, process.stderr.read().decode()[-500:]
            time.sleep(0.05)
        process.kill()  # SIGKILL while it polls
        process.communicate(timeout=30)
        assert server.batches_created == 1

        status = run_script(BATCH_JOBS, "status", "--config", config, "--results", results, cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        [batch_id] = server.batches
        assert f"{batch_id}: in_progress" in status.stdout and "8 requests" in status.stdout

        server.batch_request_s = 0.01  # the batch runs now
        rerun = run_script(SCRIPT, *args, cwd=tmp_path)  # resumes the recorded batch
        assert rerun.returncode == 0, rerun.stderr
        assert "8 waiting in open batches, 0 to label" in rerun.stdout
        assert "labelled 8 ok, 0 failed" in rerun.stdout
        assert server.batches_created == 1  # nothing paid twice
    articles = read_news(news)
    records = _one_record_each(results, articles)
    assert all(r["response"] == expected_response(r["article"]) for r in records.values())
    assert len(output.read_text(encoding="utf-8").splitlines()) == 1 + 8


def test_cancel_batch_then_the_rerun_records_the_answered_part(tmp_path):
    news = write_export(tmp_path / "news" / "export.csv", numbered_articles(6))
    results = tmp_path / "labels.jsonl"
    with FaultServer(batch_request_s=0.2) as server:
        config = write_config(tmp_path / "config.yaml", _batch_config([provider("openai", server)]))
        args = ["--config", config, "--input", news, "--results", results,
                "--output", tmp_path / "news.csv", "--no-progress"]
        process = subprocess.Popen([sys.executable, str(REPO_ROOT / SCRIPT), *map(str, args), "--batch"],
                                   cwd=tmp_path, env=script_env(), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        while not (results.exists() and any(r.get("state") == "submitted" for r in _records(results))):
            time.sleep(0.05)
        process.kill()
        process.communicate(timeout=30)
        [batch] = server.batches.values()
        while batch["request_counts"]["completed"] < 2:
            time.sleep(0.01)
        server.batch_request_s = 3600  # held there until the cancel
        cancel = run_script(BATCH_JOBS, "cancel", "--config", config, "--results", results, cwd=tmp_path)
        assert cancel.returncode == 0, cancel.stderr
        assert f"{batch['id']}: cancelling" in cancel.stdout
        rerun = run_script(SCRIPT, *args, cwd=tmp_path)
        assert rerun.returncode == 0, rerun.stderr
        assert server.batches_created == 1
    records = _one_record_each(results, read_news(news)).values()
    ok = [r for r in records if r["status"] == "ok"]
    assert 2 <= len(ok) < 6
    assert all("ended cancelled" in r["reason"] for r in records if r["status"] == "failed")


def test_batch_jobs_reads_only_a_results_file_that_is_there(tmp_path):
    config = write_config(tmp_path / "config.yaml", _batch_config(
        [{"name": "nowhere", "base_url": "http://127.0.0.1:9/v1", "models": ["m"]}]))
    missing = run_script(BATCH_JOBS, "status", "--config", config, "--results", tmp_path / "typo.jsonl",
                         cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [f"error: {tmp_path / 'typo.jsonl'}: no such results file (--results "
                                           "names the one a labelling run wrote)"]
    results = tmp_path / "labels.jsonl"
    results.write_text(json.dumps({"id": "a", "status": "ok", "article": "Profit rose.",
                                   "response": expected_response("Profit rose.")}) + "\n", encoding="utf-8")
    for action in ("status", "cancel"):
        done = run_script(BATCH_JOBS, action, "--config", config, "--results", results, cwd=tmp_path)
        assert done.returncode == 0 and done.stdout == f"no batch recorded in {results}\n", done.stderr


@pytest.mark.parametrize("created_before_the_kill", [False, True])
def test_an_uploaded_file_is_submitted_once(tmp_path, created_before_the_kill):
    """A kill between the upload and the batch id's record: the rerun finds the batch made
    from that file among the provider's batches (or creates it if there is none)."""
    import openai

    articles = _news(tmp_path, numbered_articles(3))
    with FaultServer() as server:
        config = _batch_config([provider("openai", server)])
        client = openai.OpenAI(base_url=server.base_url, api_key="not-needed")
        lines = [json.dumps({"custom_id": a.id, "method": "POST", "url": "/v1/chat/completions",
                             "body": {"model": "test-model", "messages": [{"role": "user", "content": f"Text: {a.text}"}]}})
                 for a in articles]
        uploaded = client.files.create(file=("b.jsonl", "\n".join(lines).encode()), purpose="batch")
        if created_before_the_kill:
            client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
        store = ResultStore(tmp_path / "labels.jsonl")
        store.append([{"kind": "batch", "input_file_id": uploaded.id, "batch_id": None, "state": "uploaded",
                       "provider": "openai", "model": "test-model", "ids": [a.id for a in articles]}])
        assert store.pending(articles) == []  # waiting in the batch, not asked again
        summary = label_in_batches(articles, [], store, config, show_progress=False)
        store.close()
        assert server.batches_created == 1
    assert summary.ok == 3
    assert all(r["response"] == expected_response(r["article"]) for r in store.records.values())


def test_batch_true_on_one_provider_sends_only_its_share_in_batches(tmp_path):
    articles = _news(tmp_path, numbered_articles(8))
    with FaultServer() as batched, FaultServer() as direct:
        config = _batch_config([provider("openai", batched, name="cheap", batch=True, batch_discount=0.4),
                                provider("groq", direct, name="fast")])
        store = ResultStore(tmp_path / "labels.jsonl")
        summary = label_in_batches(articles, articles, store, config, show_progress=False)
        store.close()
        assert (batched.batches_created, batched.batch_requests_answered, len(batched.seen)) == (1, 4, 4)
        assert (direct.batches_created, len(direct.seen)) == (0, 4)
    assert summary.usage["cheap"].batch_requests == 4 and summary.usage["fast"].requests == 4
    assert summary.ok == 8 and "at 0.4 × the price" in "\n".join(summary.lines())


def test_a_batch_collected_by_a_run_with_fewer_articles_stays_open_for_the_rest(tmp_path):
    articles = _news(tmp_path, numbered_articles(4))
    with FaultServer() as server:
        config = _batch_config([provider("openai", server)])
        store = ResultStore(tmp_path / "labels.jsonl")
        label_in_batches(articles, articles, store, config, show_progress=False, batch_everything=True)
        assert len(store.records) == 4  # the texts were there: all recorded, the batch closed
        partial = ResultStore(tmp_path / "partial.jsonl")
        partial.append([{**next(iter(store.batches.values())), "state": "submitted"}])
        label_in_batches(articles[:2], [], partial, config, show_progress=False)  # as with --limit 2
        assert len(partial.records) == 2 and len(partial.open_batches()) == 1
        label_in_batches(articles, [], partial, config, show_progress=False)
        assert len(partial.records) == 4 and partial.open_batches() == []
        assert server.batches_created == 1


def test_a_batch_api_down_stops_after_max_consecutive_failures_not_every_retry(tmp_path):
    articles = _news(tmp_path, numbered_articles(3))
    with FaultServer(batch_api_down=True) as server:
        config = _batch_config([provider("openai", server)], max_retries=6, max_consecutive_failures=3)
        with pytest.raises(ProviderGone) as raised:
            label_in_batches(articles, articles, ResultStore(tmp_path / "l.jsonl"), config,
                             show_progress=False, batch_everything=True)
        assert server.batch_api_refused == 3 and server.batches_created == 0  # not max_retries + 1 tries
    assert f"provider 'openai' at {server.base_url}: 3 requests in a row failed (last: HTTP 503" in str(raised.value)


def test_a_batch_provider_down_in_its_re_asks_stops_a_mixed_run_and_says_why(tmp_path, caplog):
    """Beside a synchronous provider, a batch's re-asks cannot go elsewhere: its provider's
    outages stop the run with the outage line, not "the other providers carry on"."""
    articles = _news(tmp_path, numbered_articles(8))
    with FaultServer(plan={"Company": ["server_error_500"] * 20}) as batched, FaultServer() as direct:
        config = _batch_config([provider("openai", batched, name="cheap", batch=True),
                                provider("groq", direct, name="fast")], max_retries=6, max_consecutive_failures=2)
        store = ResultStore(tmp_path / "labels.jsonl")
        with pytest.raises(ProviderGone) as raised:
            label_in_batches(articles, articles, store, config, show_progress=False)
        store.close()
    assert str(raised.value).startswith(f"provider 'cheap' at {batched.base_url}: 2 requests in a row failed")
    assert "a batch's articles cannot move to another provider" in str(raised.value)
    assert "carry on" not in caplog.text


def test_re_asks_failing_in_a_row_stop_the_run_keeping_what_the_batch_answered(tmp_path):
    """The one article the batch could not answer fails again when re-asked: the run stops at
    max_consecutive_failures with one line, the batch's answers recorded; the rerun asks only
    that article, from the same batch."""
    news = write_export(tmp_path / "news" / "export.csv", numbered_articles(4))
    results = tmp_path / "labels.jsonl"
    with FaultServer(plan={"Company 0 reports": ["server_error_500"] * 20}) as server:
        config = write_config(tmp_path / "config.yaml", _batch_config([provider("openai", server)], max_retries=6,
                                                                      max_consecutive_failures=2))
        args = ["--config", config, "--input", news, "--results", results, "--output", tmp_path / "news.csv",
                "--no-progress", "--batch"]
        stopped = run_script(SCRIPT, *args, cwd=tmp_path)
        assert stopped.returncode == 2
        assert stopped.stderr.strip().splitlines()[-1].startswith(
            f"error: provider 'openai' at {server.base_url}: 2 requests in a row failed (last: HTTP 500")
        assert server.faults_seen() == {"server_error_500": 3, "ok": 3}  # in the batch, then 2 re-asks
        answered = [r for r in _records(results) if r.get("status") == "ok"]
        assert len(answered) == 3 and all(r["response"] == expected_response(r["article"]) for r in answered)

        server.plan = {}
        rerun = run_script(SCRIPT, *args, cwd=tmp_path)
        assert rerun.returncode == 0, rerun.stderr
        assert server.batches_created == 1 and len(server.seen) == 6 + 1
    records = _one_record_each(results, read_news(news))
    assert all(r["status"] == "ok" for r in records.values())
