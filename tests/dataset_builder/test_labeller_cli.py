"""Step 03 as a script: bad input, dry run, keys from .env, --retry-failed, labels of another setup, the CSV,
and the flags whose work moved to scripts of their own."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from dataset_builder.news_articles import read_news
from tests.conftest import run_script, script_env
from tests.fault_server import FaultServer, expected_response
from tests.labeller_support import fast_config, numbered_articles, provider, write_config, write_export
from utils.schema import SentimentResponse

SCRIPT = "dataset_builder/step_03_label_articles.py"


def _run(tmp_path: Path, config: Path, *args: str, env=None):
    return run_script(SCRIPT, "--config", config, "--no-progress",
                      "--results", tmp_path / "labels.jsonl", "--output", tmp_path / "news.csv",
                      *args, cwd=tmp_path, env=env)


def _unreachable_config(tmp_path: Path) -> Path:
    config = fast_config([{"name": "nowhere", "base_url": "http://127.0.0.1:9/v1", "models": ["m"]}])
    return write_config(tmp_path / "config.yaml", config)


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    folder = tmp_path / "cases"
    folder.mkdir()
    no_title = folder / "no_title.csv"
    no_title.write_text("article_id,description,pubDate\n1,Profit rose.,2024-05-14 09:00:00\n", encoding="utf-8")
    latin1 = folder / "latin1.csv"
    latin1.write_bytes("article_id,title,description\n1,Nokia's profit,Résultat en hausse\n".encode("latin-1"))
    empty = folder / "empty.csv"
    empty.write_bytes(b"")
    return {"missing folder": (tmp_path / "no_such_folder", "news input not found"),
            "missing column": (no_title, "missing column(s) title"),
            "wrong encoding": (latin1, "not UTF-8"),
            "empty file": (empty, "empty file")}


def test_bad_input_is_one_line_naming_it_and_keeps_the_results(tmp_path):
    config = _unreachable_config(tmp_path)
    results = tmp_path / "labels.jsonl"
    record = {"id": "abc", "status": "ok", "article": "Profit rose.", "response": expected_response("x")}
    results.write_text(json.dumps(record) + "\n", encoding="utf-8")
    before = results.read_bytes()
    for case, (path, words) in _bad_inputs(tmp_path).items():
        done = _run(tmp_path, config, "--input", path)
        assert done.returncode != 0, case
        error = done.stderr.strip().splitlines()
        assert len(error) == 1 and error[0].startswith("error:"), (case, done.stderr)
        assert words in error[0] and str(path) in error[0], (case, error[0])
        assert results.read_bytes() == before, case
        assert not (tmp_path / "news.csv").exists()


def test_dry_run_shows_the_first_prompt_and_calls_nothing(tmp_path, repo_root):
    config = _unreachable_config(tmp_path)  # any call would fail: nothing listens on port 9
    done = _run(tmp_path, config, "--input", repo_root / "examples" / "news", "--dry-run", "--limit", "3")
    assert done.returncode == 0, done.stderr
    assert "3 articles" in done.stdout and "3 to label" in done.stdout
    # as it reads: each message under its role, its newlines as lines (not one escaped JSON line)
    _, system, user = re.split(r"^--- (?:system|user) ---$", done.stdout.split("first prompt:\n", 1)[1], flags=re.M)
    assert "financial sentiment analyst" in system and "\\n" not in user and len(user.splitlines()) > 10
    assert "The text was published on 2024-05-15" in user  # {date_msg} filled
    assert "Software firm wins five-year government cloud contract" in user
    assert not (tmp_path / "labels.jsonl").exists() and not (tmp_path / "news.csv").exists()


def test_key_comes_from_dotenv_and_is_never_printed(tmp_path, repo_root):
    secret = "sk-test-0123456789abcdef"
    (tmp_path / ".env").write_text(f"FINSENT_LABELLER_KEY={secret}\n", encoding="utf-8")
    env = script_env()
    env.pop("FINSENT_LABELLER_KEY", None)
    with FaultServer(required_api_key=secret) as server:
        config = write_config(tmp_path / "config.yaml", fast_config(
            [provider("openai", server, api_key_env="FINSENT_LABELLER_KEY")]))
        done = _run(tmp_path, config, "--input", repo_root / "examples" / "news", env=env)
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout + done.stderr
    assert "labelled 12 ok, 0 failed" in done.stdout
    frame = pd.read_csv(tmp_path / "news.csv")
    assert list(frame.columns) == ["Article", "JSON"] and len(frame) == 12
    for article, answer in zip(frame["Article"], frame["JSON"]):
        assert json.loads(answer) == expected_response(article)


def test_missing_key_and_wrong_key_are_one_line_errors(tmp_path, repo_root):
    env = script_env(FINSENT_LABELLER_KEY="sk-wrong-9876543210")
    with FaultServer(required_api_key="sk-right") as server:
        config = write_config(tmp_path / "config.yaml", fast_config(
            [provider("groq", server, api_key_env="FINSENT_LABELLER_KEY")]))
        wrong = _run(tmp_path, config, "--input", repo_root / "examples" / "news", env=env)
        env.pop("FINSENT_LABELLER_KEY")
        missing = _run(tmp_path, config, "--input", repo_root / "examples" / "news", env=env)
    assert wrong.returncode != 0
    assert wrong.stderr.strip().splitlines()[-1] == (
        "error: provider 'groq' refused the API key from FINSENT_LABELLER_KEY (HTTP 401): "
        "check the key and its access to model 'test-model'")
    assert "sk-wrong-9876543210" not in wrong.stdout + wrong.stderr
    assert missing.returncode != 0
    assert "FINSENT_LABELLER_KEY is not set" in missing.stderr.strip().splitlines()[-1]


def test_retry_failed_redoes_only_failed_articles(tmp_path):
    news = write_export(tmp_path / "news" / "a.csv", [("Stubborn model", "Answers out of range twice.")]
                        + numbered_articles(5))
    results = tmp_path / "labels.jsonl"
    with FaultServer(plan={"Stubborn": ["schema_sentiment"] * 3}) as server:
        config = write_config(tmp_path / "config.yaml",
                              fast_config([provider("openai", server)], max_reasks=2))
        first = _run(tmp_path, config, "--input", news)
        assert first.returncode == 0, first.stderr
        assert "labelled 5 ok, 1 failed" in first.stdout
        failed = [r for r in map(json.loads, results.read_text().splitlines()) if r["status"] == "failed"]
        assert len(failed) == 1 and "sentiment" in failed[0]["reason"]
        assert len(pd.read_csv(tmp_path / "news.csv")) == 5  # never an invalid row

        again = _run(tmp_path, config, "--input", news)  # plain rerun: everything is recorded
        assert "0 to label" in again.stdout and len(server.seen) == 5 + 3
        retried = _run(tmp_path, config, "--input", news, "--retry-failed")
        assert retried.returncode == 0, retried.stderr
        assert "1 to label" in retried.stdout and len(server.seen) == 5 + 3 + 1  # ok ones not redone
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(records) == 6 and len({r["id"] for r in records}) == 6
    assert all(r["status"] == "ok" for r in records)
    frame = pd.read_csv(tmp_path / "news.csv")
    assert len(frame) == 6
    for answer in frame["JSON"]:
        SentimentResponse.model_validate_json(answer)


def test_a_rerun_with_another_setup_labels_again_and_keep_labels_keeps_them_saying_so(tmp_path):
    """A record says what made its label: after a change of temperature, model or few-shot, a rerun
    labels again (a record of an older results file, which does not say, too); --keep-labels keeps
    them and says so before and after labelling."""
    news = write_export(tmp_path / "news" / "a.csv", numbered_articles(4))
    results = tmp_path / "labels.jsonl"

    def records() -> list[dict]:
        return [json.loads(line) for line in results.read_text().splitlines()]

    with FaultServer(models=("test-model", "other-model")) as server:
        def run_with(*args: str, **options):
            config = write_config(tmp_path / "config.yaml", fast_config(
                [provider("openai", server, models=[options.pop("model", "test-model")])], **options))
            done = _run(tmp_path, config, "--input", news, *args)
            assert done.returncode == 0, done.stderr
            return done.stdout

        assert "4 to label" in run_with() and len(server.seen) == 4
        first = records()
        assert {(r["provider"], r["model"], r["temperature"], r["few_shot"]) for r in first} == \
            {("openai", "test-model", 0.0, True)}
        assert len({r["prompt_sha256"] for r in first}) == 4  # the prompt holds the article
        same = run_with()
        assert "0 to label" in same and "another setup" not in same and len(server.seen) == 4

        warmer = run_with(temperature=0.5)
        assert "4 to label" in warmer and len(server.seen) == 8
        assert "4 recorded by another setup (another provider or model, prompt, few-shot or temperature " \
               "than this run's): labelled again (--keep-labels keeps their labels)" in warmer
        assert {r["temperature"] for r in records()} == {0.5}

        kept = run_with("--keep-labels", temperature=0.5, model="other-model", few_shot=False)
        assert len(server.seen) == 8 and "0 to label" in kept
        line = "kept the labels of 4 recorded by another setup"
        assert kept.count(line) == 2 and kept.splitlines()[-1].startswith(line)  # before and in the summary
        assert {r["model"] for r in records()} == {"test-model"}

        assert "4 to label" in run_with(temperature=0.5, model="other-model") and len(server.seen) == 12
        assert {r["model"] for r in records()} == {"other-model"}
        assert {r["prompt_sha256"] for r in records()} == {r["prompt_sha256"] for r in first}

        older = [{k: v for k, v in r.items() if k not in ("prompt_sha256", "few_shot", "temperature")}
                 for r in records()]
        results.write_text("".join(json.dumps(r) + "\n" for r in older), encoding="utf-8")
        assert "4 to label" in run_with(temperature=0.5, model="other-model") and len(server.seen) == 16
    assert len(pd.read_csv(tmp_path / "news.csv")) == 4


@pytest.mark.parametrize("limit", [4])
def test_limit_labels_the_first_articles_only(tmp_path, repo_root, limit):
    with FaultServer() as server:
        config = write_config(tmp_path / "config.yaml", fast_config([provider("openai", server)]))
        done = _run(tmp_path, config, "--input", repo_root / "examples" / "news", "--limit", str(limit))
        assert done.returncode == 0, done.stderr
        assert len(server.seen) == limit
        verbose = _run(tmp_path, config, "--input", repo_root / "examples" / "news", "--limit", str(limit + 1),
                       "--verbose")
    assert len(pd.read_csv(tmp_path / "news.csv")) == limit + 1
    assert "HTTP Request:" not in done.stderr  # the clients' INFO line per request stays quiet
    assert verbose.stderr.count("HTTP Request: POST") == 1  # --verbose brings it back


def test_an_unreachable_provider_stops_the_run_with_one_line_and_keeps_the_records(tmp_path, repo_root):
    config = write_config(tmp_path / "config.yaml", fast_config(
        [{"name": "gone", "base_url": "http://127.0.0.1:1/v1", "models": ["m"]}],
        max_consecutive_failures=20, max_retries=6))
    news = repo_root / "examples" / "news"
    kept = {"id": read_news(news)[0].id, "status": "ok", "article": read_news(news)[0].text,
            "response": expected_response("x")}
    results = tmp_path / "labels.jsonl"
    results.write_text(json.dumps(kept) + "\n", encoding="utf-8")
    done = _run(tmp_path, config, "--input", news)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: provider 'gone' at http://127.0.0.1:1/v1: 20 requests in a row failed (last: connection "
        "error); no provider left, stopping (every record is kept: rerun when it is back)")
    records = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    assert records[0] == kept and len({r["id"] for r in records}) == len(records)
    assert len(pd.read_csv(tmp_path / "news.csv")) == 1  # the CSV is rebuilt from what is kept


@pytest.mark.parametrize("flags, now", [
    (["--explain", "tweets"], "python dataset_builder/step_03b_explain_labels.py tweets"),
    (["--explain"], "python dataset_builder/step_03b_explain_labels.py tweets|financial_phrasebank"),
    (["--batch-status"], "python dataset_builder/batch_jobs.py status"),
    (["--cancel-batch"], "python dataset_builder/batch_jobs.py cancel")])
def test_a_flag_that_moved_names_the_script_that_does_it_now(tmp_path, flags, now):
    done = _run(tmp_path, _unreachable_config(tmp_path), *flags)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"error: {flags[0]} is no longer a flag of step_03_label_articles.py: run {now}"]
    assert not (tmp_path / "labels.jsonl").exists() and not (tmp_path / "news.csv").exists()
