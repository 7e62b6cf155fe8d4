"""generate_model_sentiments: real model answers (embedded Gemma 3 270M) written in the original
study's format, read back through the reports' reader; reruns, --force, faults, bad input."""
import json
from collections import Counter

import pytest

from eval.backends import make_backend, parse_model_entries
from eval.news import Article, load_snapshot, prompt_text, save_snapshot
from eval.sentiment_files import load_sentiments, read_iteration_file
from eval.sentiment_folder import journal_path
from eval.sentiment_runner import mode_rates, run_model, run_models, summary_table, work_units
from eval.settings import EvalConfig
from tests.conftest import REPO_ROOT, run_script, script_env
from tests.fault_server import FaultServer, expected_response
from tests.ollama_proxy import OllamaProxy
from utils.engine import free_port

EXAMPLE = REPO_ROOT / "examples" / "news_snapshot.json"


def small_snapshot(n: int = 2):
    snapshot = load_snapshot(EXAMPLE)
    return snapshot.model_copy(update={"articles": snapshot.articles[:n]})


def counting_factory(engine, calls: Counter):
    def factory(spec, config):
        backend = make_backend(spec, config, engine=engine)
        complete = backend.complete

        def counted(messages, seed=None):
            calls[spec.folder] += 1
            return complete(messages, seed=seed)

        backend.complete = counted
        return backend
    return factory


def reference_file(shared_data):
    return read_iteration_file(shared_data / "reference_eval_msft" / "sentiments" / "llama3_8b-instruct-q4_K_M"
                               / "MSFT_0.json")


def invalid_reference_answer(shared_data):
    folder = shared_data / "reference_eval_msft" / "sentiments" / "phi3_3.8b-mini-instruct-4k-fp16"
    for path in sorted(folder.glob("MSFT_*.json")):
        for answer in read_iteration_file(path)["sentiments"].values():
            if not answer["valid"]:
                return answer
    raise AssertionError("the reference data has invalid answers")


def test_files_have_the_original_schema_and_reruns_skip(embedded_engine, tmp_path, shared_data):
    folder = tmp_path / "sentiments"
    # The short "trained" prompt keeps this fast on 2 cores; the few-shot prompt runs in the
    # Ollama script test below.
    config = EvalConfig(sentiment_save_folder=str(folder), sample_size=2, max_article_chars=300,
                        num_tokens_to_predict=96, max_reasoning_chars=120, models_to_test=[
                            {"backend": "llamacpp", "model": "gemma:structured", "structured": True,
                             "prompt": "trained"},
                            # 12 tokens cannot hold a whole answer: every free answer is cut off.
                            {"backend": "llamacpp", "model": "gemma-free", "max_tokens": 12, "prompt": "trained"}])
    specs = parse_model_entries(config.models_to_test, config)
    snapshot = small_snapshot(2)
    calls: Counter = Counter()
    summaries = run_models(specs, snapshot, config, progress=False, backend_factory=counting_factory(
        embedded_engine, calls))
    assert calls == {"gemma_structured": 4, "gemma-free": 4}
    assert [s.iterations_written for s in summaries] == [2, 2]

    data = load_sentiments(folder, config.models_to_test)  # the reports' reader
    assert data.models == ["gemma_structured", "gemma-free"]
    assert len(data.answers) == 8 and set(data.answers["article_key"]) == {a.key for a in snapshot.articles}

    reference = reference_file(shared_data)
    valid_keys = set(next(iter(reference["sentiments"].values())))
    invalid_keys = set(invalid_reference_answer(shared_data))
    for path in sorted(folder.glob("*/MSFT_*.json")):
        ours = json.loads(path.read_text())
        assert list(ours) == list(reference)  # average_sentiment, time_taken, sentiments
        assert isinstance(ours["average_sentiment"], float) and isinstance(ours["time_taken"], float)
        for key, answer in ours["sentiments"].items():
            assert set(answer) == (valid_keys if answer["valid"] else invalid_keys), path
            assert answer["url"] in {a.url for a in snapshot.articles}
            assert answer["published"] in {a.published for a in snapshot.articles}

    free = summaries[1]
    assert free.valid < free.answers  # cut-off answers are invalid…
    sidecars = sorted((folder / "gemma-free").glob("MSFT_*.invalid.jsonl"))
    kept = [json.loads(line) for p in sidecars for line in p.read_text().splitlines()]
    assert len(kept) == free.answers - free.valid  # …and each one's raw text is kept
    assert all(k["raw"] and k["error"] for k in kept)
    table = summary_table(summaries)
    assert "structured mode:" in table and "free mode:" in table

    mtimes = {p: p.stat().st_mtime_ns for p in folder.glob("*/*.json")}
    calls.clear()
    again = run_models(specs, snapshot, config, progress=False, backend_factory=counting_factory(
        embedded_engine, calls))
    assert not calls and [s.iterations_skipped for s in again] == [2, 2]
    assert mtimes == {p: p.stat().st_mtime_ns for p in folder.glob("*/*.json")}

    forced = run_models(specs[1:], snapshot, config, force=True, progress=False,
                        backend_factory=counting_factory(embedded_engine, calls))
    assert calls == {"gemma-free": 4} and forced[0].iterations_written == 2


def test_a_failing_request_is_counted_and_kept(embedded_engine, tmp_path):
    """An article longer than a slot's context makes llama.cpp answer HTTP 400: counted, not lost."""
    snapshot = small_snapshot(1)
    huge = Article(key="0123abcd", url="https://example.com/huge", title="Huge", published="",
                   text="Microsoft revenue grew strongly this quarter. " * 1500)
    snapshot = snapshot.model_copy(update={"articles": snapshot.articles + [huge]})
    config = EvalConfig(sentiment_save_folder=str(tmp_path / "s"), sample_size=1, max_article_chars=100_000,
                        num_tokens_to_predict=8, models_to_test=[{"backend": "llamacpp", "model": "g"}])
    summary = run_models(parse_model_entries(config.models_to_test, config), snapshot, config,
                         progress=False, backend_factory=counting_factory(embedded_engine, Counter()))[0]
    assert summary.exceptions == {"HTTPStatusError": 1}
    assert "0123abcd" in summary.exception_examples[0]
    written = read_iteration_file(tmp_path / "s" / "g" / "MSFT_0.json")["sentiments"]
    assert written["0123abcd"]["valid"] is False
    sidecar = [json.loads(line) for line in (tmp_path / "s" / "g" / "MSFT_0.invalid.jsonl").open()]
    assert any(r["key"] == "0123abcd" and r["exception"].startswith("HTTPStatusError") for r in sidecar)


def test_script_runs_a_plain_ollama_model_and_a_rerun_skips(embedded_engine, tmp_path):
    save_snapshot(small_snapshot(2), tmp_path / "news" / "snapshot.json")
    (tmp_path / "config.yaml").write_text(
        "models_to_test: ['gemma3:270m']\nsample_size: 2\nstructured: true\nnum_tokens_to_predict: 96\n"
        "max_reasoning_chars: 120\nmax_article_chars: 300\nparallel_requests: 4\n")
    with OllamaProxy(embedded_engine.base_url, models=["gemma3:270m"]) as proxy:
        env = script_env(OLLAMA_HOST=proxy.host)
        result = run_script("eval/generate_model_sentiments.py", "--config", "config.yaml", cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stderr
        chats = [p for p, _ in proxy.requests if p == "/api/chat"]
        assert len(chats) == 4
        assert "structured mode: " in result.stdout
        files = sorted((tmp_path / "sentiments" / "gemma3_270m").glob("MSFT_*.json"))
        assert [f.name for f in files] == ["MSFT_0.json", "MSFT_1.json"]
        summary = json.loads((tmp_path / "reports" / "generation_summary.json").read_text())
        assert summary["models"][0]["answers"] == 4 and summary["models"][0]["mode"] == "structured"

        proxy.requests.clear()
        rerun = run_script("eval/generate_model_sentiments.py", "--config", "config.yaml", cwd=tmp_path, env=env)
        assert rerun.returncode == 0 and not proxy.requests  # complete files: no server needed


@pytest.mark.parametrize("entry, message", [
    ("{backend: vllm, model: x}", "models_to_test entry 1: unknown backend 'vllm'"),
    ("{backend: llamacpp, model: ft, gguf: absent.gguf}", "GGUF file not found: absent.gguf"),
    ("'llama3:8b'", "Ollama server at http://127.0.0.1:{port} is not reachable"),
])
def test_bad_input_is_one_line_and_keeps_written_files(tmp_path, entry, message):
    port = free_port()
    save_snapshot(small_snapshot(1), tmp_path / "news" / "snapshot.json")
    (tmp_path / "config.yaml").write_text(f"models_to_test: [{entry}]\nsample_size: 1\n")
    old = tmp_path / "sentiments" / "llama3_8b" / "MSFT_0.json"
    old.parent.mkdir(parents=True)
    old.write_text('{"average_sentiment": 0.1, "time_taken": 1.0, "sentiments": {}}')
    result = run_script("eval/generate_model_sentiments.py", "--config", "config.yaml", "--force",
                        cwd=tmp_path, env=script_env(OLLAMA_HOST=f"http://127.0.0.1:{port}"))
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message.format(port=port) in last
    assert old.read_text() == '{"average_sentiment": 0.1, "time_taken": 1.0, "sentiments": {}}'


def test_reference_results_read_back_and_their_averages_match_ours(shared_data):
    """The original's files load through the reports' reader, count as complete for their own
    articles, and our average_sentiment reproduces theirs wherever every answer is valid."""
    from eval.sentiment_runner import is_complete, weighted_average_sentiment

    folder = shared_data / "reference_eval_msft" / "sentiments"
    data = load_sentiments(folder)
    assert len(data.models) == 34 and len(data.files) == 476
    checked = 0
    for path in sorted(folder.glob("*/MSFT_*.json")):
        answers = read_iteration_file(path)["sentiments"]
        assert is_complete(path, set(answers)) and not is_complete(path, set(answers) | {"00000000"})
        if all(a["valid"] for a in answers.values()):
            stored = json.loads(path.read_text())["average_sentiment"]
            assert weighted_average_sentiment(list(answers.values())) == pytest.approx(stored, abs=1e-9), path
            checked += 1
    assert checked > 300


def test_each_article_is_asked_all_its_iterations_in_turn_with_a_seed_per_iteration(embedded_engine, tmp_path):
    """Article-major order (one request at a time here, so the order is exact): the same
    prompt back to back, as the slot's KV cache wants, each iteration with its own seed."""
    config = EvalConfig(sentiment_save_folder=str(tmp_path / "s"), sample_size=3, max_article_chars=300,
                        num_tokens_to_predict=96, max_reasoning_chars=120, parallel_requests=1, seed=7,
                        models_to_test=[{"backend": "llamacpp", "model": "g", "structured": True,
                                         "prompt": "trained"}])
    spec = parse_model_entries(config.models_to_test, config)[0]
    snapshot = small_snapshot(2)
    backend = make_backend(spec, config, engine=embedded_engine)
    asked = []
    complete = backend.complete

    def recorded(messages, seed=None):
        asked.append((messages[-1]["content"], seed))
        return complete(messages, seed=seed)

    backend.complete = recorded
    summary = run_model(spec, backend, snapshot, config, progress=False)
    first, second = (prompt_text(a, 300) for a in snapshot.articles)
    assert asked == [(first, 7), (first, 8), (first, 9), (second, 7), (second, 8), (second, 9)]
    assert summary.iterations_written == 3 and summary.answers == 6
    assert not journal_path(config.sentiment_save_folder, "g", "MSFT").exists()  # all files written
    for i in range(3):
        written = read_iteration_file(tmp_path / "s" / "g" / f"MSFT_{i}.json")
        assert list(written["sentiments"]) == [a.key for a in snapshot.articles]  # the snapshot's order
        assert written["time_taken"] == pytest.approx(sum(a["time_taken"] for a in written["sentiments"].values()),
                                                      abs=0.02)


def test_fewer_articles_than_workers_still_fill_every_worker():
    assert work_units({"a": [0, 1, 2, 3, 4], "b": [0, 1, 2, 3, 4]}, 4) == [
        ("a", [0, 1, 2]), ("b", [0, 1, 2]), ("a", [3, 4]), ("b", [3, 4])]
    assert work_units({"a": [0, 1], "b": [1], "c": []}, 2) == [("a", [0, 1]), ("b", [1])]
    assert work_units({"a": []}, 4) == []


def _journal_lines(path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_a_killed_run_resumes_from_its_journal(embedded_engine, tmp_path):
    """The script as a real subprocess, killed with SIGKILL once it has journaled answers:
    the rerun asks only for the answers not journaled, writes every file and drops the journal."""
    import subprocess
    import sys
    import time

    from utils.io import read_jsonl

    save_snapshot(small_snapshot(2), tmp_path / "news" / "snapshot.json")
    (tmp_path / "config.yaml").write_text(
        "models_to_test: ['gemma3:270m']\nsample_size: 3\nstructured: true\nnum_tokens_to_predict: 96\n"
        "max_reasoning_chars: 120\nmax_article_chars: 300\nparallel_requests: 2\nseed: 11\n")
    folder = tmp_path / "sentiments" / "gemma3_270m"
    journal = folder / "MSFT.journal.jsonl"
    with OllamaProxy(embedded_engine.base_url, models=["gemma3:270m"]) as proxy:
        env = script_env(OLLAMA_HOST=proxy.host)
        command = [sys.executable, str(REPO_ROOT / "eval" / "generate_model_sentiments.py"),
                   "--config", "config.yaml", "--no-progress"]
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        deadline = time.monotonic() + 300
        while _journal_lines(journal) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        alive = process.poll() is None
        process.kill()  # SIGKILL: no cleanup
        _, stderr = process.communicate(timeout=30)
        assert alive, f"the run ended before it could be killed: {stderr.decode()[-500:]}"
        journaled = read_jsonl(journal)
        assert 2 <= len(journaled) < 6
        seeds = [body["options"]["seed"] for path, body in proxy.requests if path == "/api/chat"]
        assert set(seeds) <= {11, 12, 13} and len(set(seeds)) > 1  # one seed per iteration
        # an iteration whose answers all came before the kill already has its file
        written_before = {int(p.stem.split("_")[1]) for p in folder.glob("MSFT_*.json")}
        reused = [e for e in journaled if e["iteration"] not in written_before]

        proxy.requests.clear()
        rerun = run_script("eval/generate_model_sentiments.py", "--config", "config.yaml", "--no-progress",
                           cwd=tmp_path, env=env)
        assert rerun.returncode == 0, rerun.stderr
        chats = [p for p, _ in proxy.requests if p == "/api/chat"]
        assert len(chats) == 6 - len(journaled)
    assert sorted(p.name for p in folder.glob("MSFT_*.json")) == ["MSFT_0.json", "MSFT_1.json", "MSFT_2.json"]
    assert not journal.exists()
    for entry in journaled:  # the journaled answers are the ones in the files
        written = read_iteration_file(folder / f"MSFT_{entry['iteration']}.json")["sentiments"]
        assert written[entry["key"]] == entry["record"]
    summary = json.loads((tmp_path / "reports" / "generation_summary.json").read_text())["models"][0]
    assert summary["iterations_skipped"] == len(written_before)
    assert summary["answers_reused"] == len(reused) and summary["answers"] == 6 - len(journaled)


@pytest.mark.parametrize("torn", ["a whole answer", "cut inside a character"])
def test_a_torn_last_journal_line_is_asked_again(tmp_path, torn):
    """A kill -9 mid-append leaves the journal's last line without its newline: that answer is
    asked again (even when the line parses), the complete lines are reused as they are."""
    snapshot = small_snapshot(2)
    first, second = snapshot.articles
    with FaultServer() as server:
        config = EvalConfig(sentiment_save_folder=str(tmp_path / "s"), sample_size=2, models_to_test=[
            {"backend": "openai", "model": "test-model", "base_urls": [server.base_url], "prompt": "trained"}])
        spec = parse_model_entries(config.models_to_test, config)[0]
        journal = journal_path(config.sentiment_save_folder, spec.folder, snapshot.ticker)
        journal.parent.mkdir(parents=True)

        def line(iteration: int, article: Article, sentiment: float) -> bytes:
            record = {"reasoning": "Revenue up €2 bn, journaled before the kill.", "sentiment": sentiment,
                      "confidence": 0.5, "valid": True, "url": article.url, "published": article.published,
                      "time_taken": 0.1}
            return json.dumps({"iteration": iteration, "key": article.key, "record": record, "raw": None,
                               "error": None, "exception": None}, ensure_ascii=False).encode()

        last = line(1, second, 0.4)
        if torn != "a whole answer":
            last = last[:last.index("€".encode()) + 1]
        journal.write_bytes(b"".join(line(i, a, s) + b"\n" for i, a, s in
                                     [(0, first, 0.1), (0, second, 0.2), (1, first, 0.3)]) + last)
        summary = run_model(spec, make_backend(spec, config), snapshot, config, progress=False)
        asked = [request.article for request in server.seen]
    wanted = prompt_text(second, config.max_article_chars).strip()
    assert asked == [wanted] and (summary.answers_reused, summary.answers) == (3, 1)
    files = [read_iteration_file(tmp_path / "s" / spec.folder / f"MSFT_{i}.json")["sentiments"] for i in (0, 1)]
    assert [files[0][first.key]["sentiment"], files[0][second.key]["sentiment"], files[1][first.key]["sentiment"]] \
        == [0.1, 0.2, 0.3]
    assert files[1][second.key]["sentiment"] == expected_response(wanted)["sentiment"]
    assert not journal.exists()


def test_a_rerun_answered_from_the_files_reports_the_mode_figures_of_the_first_run(tmp_path):
    snapshot = small_snapshot(3)
    with FaultServer() as server:
        config = EvalConfig(sentiment_save_folder=str(tmp_path / "s"), sample_size=2, models_to_test=[
            {"backend": "openai", "model": "test-model", "base_urls": [server.base_url], "prompt": "trained"}])
        specs = parse_model_entries(config.models_to_test, config)
        first = run_models(specs, snapshot, config, progress=False)
        rerun = run_models(specs, snapshot, config, progress=False)
    assert (first[0].answers, rerun[0].answers) == (6, 0)  # the rerun asked nothing ...
    assert mode_rates(rerun) == mode_rates(first) and mode_rates(first)["free"]["answers"] == 6  # ... and says the same
