"""Crash safety: step 03 as a real subprocess, killed with SIGKILL five times at random
moments and resumed each time, ends with exactly one valid row per article."""
from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter

import pandas as pd
import pytest

from dataset_builder.news_articles import read_news
from tests.conftest import REPO_ROOT, script_env
from tests.fault_server import FaultServer, expected_response
from tests.labeller_support import fast_config, numbered_articles, provider, write_config, write_export

SCRIPT = REPO_ROOT / "dataset_builder" / "step_03_label_articles.py"
ARTICLES = 220
KILLS = 5


def _lines(path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow
def test_kill_dash_nine_five_times_then_resume(tmp_path):
    news = write_export(tmp_path / "news" / "export.csv", numbered_articles(ARTICLES, prefix="Crashco"))
    results, output = tmp_path / "labels.jsonl", tmp_path / "news.csv"
    rng = random.Random()
    faults = ("rate_limit", "server_error_500", "server_error_503", "disconnect", "truncated_json",
              "prose_json", "schema_sentiment", "schema_missing")
    with FaultServer(latency_s=0.1, fault_rate=0.05, random_faults=faults, retry_after_s=1) as server:
        config = write_config(tmp_path / "config.yaml", fast_config(
            [provider("openai", server)], max_in_flight=4, max_reasks=3, max_retries=5))
        command = [sys.executable, str(SCRIPT), "--config", str(config), "--input", str(news),
                   "--results", str(results), "--output", str(output), "--no-progress"]
        kills = 0
        while kills < KILLS:
            before = _lines(results)
            process = subprocess.Popen(command, cwd=tmp_path, env=script_env(),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 60
            while _lines(results) == before and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)  # wait until this run has recorded something
            time.sleep(rng.uniform(0.0, 0.5))
            alive = process.poll() is None
            process.kill()  # SIGKILL: no cleanup, no finally
            _, stderr = process.communicate(timeout=30)
            assert alive, f"the run ended before it could be killed: {stderr.decode()[-500:]}"
            kills += 1
        assert _lines(results) < ARTICLES, "the killed runs should have left work to resume"
        final = subprocess.run(command, cwd=tmp_path, env=script_env(), capture_output=True,
                               text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert f"wrote {ARTICLES} labelled articles" in final.stdout

    articles = read_news(news)
    records = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    ids = Counter(record["id"] for record in records)
    assert set(ids) == {a.id for a in articles} and max(ids.values()) == 1
    assert all(record["status"] == "ok" for record in records)

    frame = pd.read_csv(output)
    assert len(frame) == ARTICLES and frame["Article"].is_unique
    assert set(frame["Article"]) == {a.text for a in articles}
    for article, answer in zip(frame["Article"], frame["JSON"]):
        assert json.loads(answer) == expected_response(article)


def test_a_kill_during_retry_failed_leaves_every_article_a_record(tmp_path):
    news = write_export(tmp_path / "news" / "export.csv", numbered_articles(10, prefix="Retryco"))
    results, output = tmp_path / "labels.jsonl", tmp_path / "news.csv"
    articles = read_news(news)
    failed = [{"id": a.id, "status": "failed", "reason": "gave up after 7 tries: HTTP 503", "article": a.text,
               "response": None} for a in articles]
    results.write_text("".join(json.dumps(record) + "\n" for record in failed), encoding="utf-8")
    with FaultServer(latency_s=0.3) as server:
        config = write_config(tmp_path / "config.yaml", fast_config([provider("openai", server)], max_in_flight=2))
        command = [sys.executable, str(SCRIPT), "--config", str(config), "--input", str(news), "--results",
                   str(results), "--output", str(output), "--no-progress", "--retry-failed"]
        process = subprocess.Popen(command, cwd=tmp_path, env=script_env(), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        while _lines(results) == len(articles) and process.poll() is None:
            time.sleep(0.02)
        process.kill()  # mid-retry: some answers recorded, the others not asked yet
        process.communicate(timeout=30)
        latest = {}
        for line in results.read_text(encoding="utf-8").splitlines():
            latest[json.loads(line)["id"]] = json.loads(line)["status"]
        assert set(latest) == {a.id for a in articles}  # no article without its record
        assert 0 < Counter(latest.values())["ok"] < len(articles)
        final = subprocess.run(command, cwd=tmp_path, env=script_env(), capture_output=True, text=True,
                               timeout=120)
    assert final.returncode == 0, final.stderr
    records = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    assert len(records) == len(articles) and all(r["status"] == "ok" for r in records)  # compacted
    assert len(pd.read_csv(output)) == len(articles)
