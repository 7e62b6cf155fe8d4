"""Synthetic texts from a provider (dataset_builder/synthesize_texts.py) over real HTTP: the
fault-injecting server answering as a writer would (faults re-asked or retried, a wrong sentiment
refused, a repeated text dropped), a kill -9 mid-run then a rerun that asks only what is left,
--retry-failed, the corpus CSV step 04 reads, and the real Gemma 3 270M on the embedded engine."""
from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
import time

import pytest

from dataset_builder.corpus import is_corpus_csv, read_corpus
from dataset_builder.settings import LabellerConfig, SynthesisConfig
from utils.labels import sentiment_label
from dataset_builder.synthesis import SYNTHESIS_COLUMNS, grid_cells
from tests.conftest import REPO_ROOT, run_script, script_env
from tests.fault_server import FaultServer
from tests.labeller_support import fast_config, provider, write_config

SCRIPT = "dataset_builder/synthesize_texts.py"
GRID = {"styles": ["news headline", "analyst note"], "topics": ["guidance", "a lawsuit or regulator"],
        "sentiments": ["positive", "neutral", "negative"], "strengths": ["strong"]}
SENTIMENT_OF = {"strongly positive": 0.8, "plainly neutral": 0.0, "strongly negative": -0.8}


def writer(prompt: str) -> dict:
    """A provider that writes what it is asked: a text of the cell's style and topic, with the
    sentiment asked for, in words of its own (drawn from the prompt's hash). The second text of
    the first cell repeats the first word for word (a duplicate to drop)."""
    sentiment = next(value for tone, value in SENTIMENT_OF.items() if tone in prompt)
    if "It is text 2 " in prompt and "news headline about guidance" in prompt and sentiment > 0:
        prompt = prompt.replace("It is text 2 ", "It is text 1 ")
    words = [hashlib.sha256(f"{prompt}{i}".encode()).hexdigest()[:7] for i in range(8)]
    return {"text": f"Vexor Corp: {' '.join(words)}.", "reasoning": "The news bears on the shares.",
            "sentiment": sentiment, "confidence": 0.9}


def synthesis_config(tmp_path, server, **labeller):
    return fix_grid(write_config(tmp_path / "config.yaml",
                                 fast_config([provider("openai_compatible", server)], **labeller)))


def fix_grid(path):
    """write_config writes dataset keys as strings: put the grid back as YAML lists."""
    import yaml

    data = yaml.safe_load(path.read_text())
    data["dataset"]["synthesis"] = GRID
    path.write_text(yaml.safe_dump(data))
    return path


def synthesize(tmp_path, config, count: int, *extra: str):
    return run_script(SCRIPT, "--config", config, "--count", str(count), "--results", tmp_path / "texts.jsonl",
                      "--output", tmp_path / "texts.csv", "--no-progress", *extra, cwd=tmp_path)


def records(tmp_path) -> dict[str, dict]:
    lines = (tmp_path / "texts.jsonl").read_text(encoding="utf-8").splitlines()
    return {r["id"]: r for r in map(json.loads, lines) if r.get("kind") != "batch"}  # texts, not batches


def test_faults_retried_wrong_sentiment_refused_duplicates_dropped(tmp_path):
    count = 14  # the 12 cells of the grid, then the first two again (text 2)
    plan = {"analyst note about guidance": ["rate_limit", "truncated_json"],  # retried, then re-asked
            "news headline about a lawsuit or regulator at a listed company you invent (a name, figures and "
            "details of your own), at most 280 characters, whose news is plainly neutral":
                ["schema_sentiment", "schema_sentiment"]}  # invalid twice: failed (one re-ask)
    with FaultServer(plan=plan, answer=writer) as server:
        config = (synthesis_config(tmp_path, server, max_reasks=1))
        result = synthesize(tmp_path, config, count)
    assert result.returncode == 0, result.stderr[-2000:]
    found = records(tmp_path)
    cells = grid_cells(SynthesisConfig(**GRID), count, 0.15)
    assert set(found) == {cell.id for cell in cells}  # one record per text asked for
    failed = [r for r in found.values() if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["reason"].startswith("invalid answer: schema violation: sentiment")
    for record in found.values():
        assert record["provider"] == "openai_compatible" and record["model"] == "test-model"
        assert record["article"].startswith("Write one new ")  # the prompt that made it
        if record["status"] == "ok":
            answer = record["response"]
            assert sentiment_label(answer["sentiment"], 0.15) in answer["asked"]
    rows = list(csv.DictReader(open(tmp_path / "texts.csv", encoding="utf-8")))
    assert list(rows[0]) == list(SYNTHESIS_COLUMNS) and is_corpus_csv(tmp_path / "texts.csv")
    assert len(rows) == count - 1 - 1  # the failed one, and the repeat of the first text
    assert "(1 duplicates dropped)" in result.stdout
    assert [line for line in result.stdout.splitlines() if line.startswith("dropped 'Vexor Corp: ")]
    corpus = read_corpus(tmp_path / "texts.csv")  # what step 04 reads for its source "synthetic"
    assert {row.style for row in corpus} == set(GRID["styles"]) and len(corpus) == len(rows)
    assert {row["provider"] for row in rows} == {"openai_compatible"}

    with FaultServer(answer=writer) as again:  # the plan's faults are spent: a retry writes it
        config = (synthesis_config(tmp_path, again, max_reasks=1))
        rerun = synthesize(tmp_path, config, count)
        assert rerun.returncode == 0 and len(again.seen) == 0  # nothing left without --retry-failed
        retried = synthesize(tmp_path, config, count, "--retry-failed")
        assert retried.returncode == 0 and len(again.seen) == 1
    assert all(r["status"] == "ok" for r in records(tmp_path).values())


def test_a_sentiment_outside_the_class_asked_is_re_asked_then_failed(tmp_path):
    def contrary(prompt: str) -> dict:
        return {**writer(prompt), "sentiment": -writer(prompt)["sentiment"] or 0.5}

    with FaultServer(answer=contrary) as server:
        config = (synthesis_config(tmp_path, server, max_reasks=1))
        result = synthesize(tmp_path, config, 1)
        assert len(server.seen) == 2  # asked, re-asked with the reason
    # nothing written: a failed run (exit 1) in one line, not an empty corpus that exits 0
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: no text was written to {tmp_path / 'texts.csv'}: 1 failed")
    [record] = records(tmp_path).values()
    assert record["status"] == "failed"
    assert record["reason"] == ("invalid answer: sentiment -0.8 is negative; the text was to be positive "
                                "(|sentiment| above 0.15)")


@pytest.mark.slow
def test_kill_dash_nine_then_the_rerun_writes_only_what_is_left(tmp_path):
    count = 24
    with FaultServer(latency_s=0.2, answer=writer) as server:
        config = (synthesis_config(tmp_path, server, max_in_flight=2))
        command = [sys.executable, str(REPO_ROOT / SCRIPT), "--config", str(config), "--count", str(count),
                   "--results", str(tmp_path / "texts.jsonl"), "--output", str(tmp_path / "texts.csv"),
                   "--no-progress"]
        process = subprocess.Popen(command, cwd=tmp_path, env=script_env(), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        results = tmp_path / "texts.jsonl"
        deadline = time.monotonic() + 120
        while (not results.exists() or results.read_bytes().count(b"\n") < 4) and time.monotonic() < deadline:
            time.sleep(0.02)
        process.kill()  # SIGKILL mid-run
        process.communicate(timeout=30)
        done = len(records(tmp_path))
        assert 4 <= done < count
        asked_before = len(server.seen)
        final = subprocess.run(command, cwd=tmp_path, env=script_env(), capture_output=True, text=True, timeout=300)
        assert final.returncode == 0, final.stderr[-2000:]
        assert len(server.seen) - asked_before == count - done  # only the cells without a record
    assert len(records(tmp_path)) == count
    assert f"{count} texts over the grid: {done} already recorded" in final.stdout


def test_bad_count_and_missing_against_are_one_line(tmp_path):
    result = run_script(SCRIPT, "--count", "0", cwd=tmp_path)
    assert (result.returncode, result.stderr.strip()) == (2, "error: --count 0: at least 1")
    result = run_script(SCRIPT, "--count", "2", "--against", tmp_path / "nope.csv", "--dry-run", cwd=tmp_path)
    assert (result.returncode, result.stderr.strip().splitlines()[-1]) == (2, f"error: --against {tmp_path / 'nope.csv'}: not found")


@pytest.mark.slow
def test_the_embedded_engine_writes_a_text(tmp_path, embedded_engine):
    """The real Gemma 3 270M, constrained to the schema with the text: a valid row, or a failed
    record with its reason, never a crash."""
    config = LabellerConfig(
        providers=[{"name": "embedded", "kind": "openai_compatible", "base_url": embedded_engine.base_url,
                    "models": ["gemma-3-270m"], "response_format": "json_schema", "timeout_s": 240}],
        max_in_flight=2, max_tokens=200, max_retries=0, max_reasks=1)
    path = fix_grid(write_config(tmp_path / "config.yaml", config))
    result = synthesize(tmp_path, path, 2)
    assert result.returncode in (0, 1), result.stderr[-2000:]  # 1: no text written, said in one line
    found = list(records(tmp_path).values())
    assert len(found) == 2 and all(r["model"] == "gemma-3-270m" for r in found)
    for record in found:
        if record["status"] == "ok":
            assert 0 < len(record["response"]["text"]) <= 280 and record["prompt_tokens"] > 0
        else:
            assert record["reason"].startswith(("invalid answer: ", "gave up", "request refused"))
    rows = list(csv.DictReader(open(tmp_path / "texts.csv", encoding="utf-8")))
    dropped = int(result.stdout.split(" duplicates dropped)")[0].rsplit("(", 1)[1])  # a small model repeats itself
    assert len(rows) + dropped == sum(r["status"] == "ok" for r in found)
    assert (result.returncode == 0) == bool(rows)


def test_through_the_batch_api(tmp_path):
    """--batch: one batch for the provider (the fault server's Batch API), its answers validated and
    recorded as the synchronous path's are."""
    with FaultServer(answer=writer) as server:
        config = fix_grid(write_config(tmp_path / "config.yaml", fast_config(
            [provider("openai", server)], batch_poll_initial_s=0.05, batch_poll_max_s=0.1)))
        result = synthesize(tmp_path, config, 6, "--batch")
        assert server.batches_created == 1
    assert result.returncode == 0, result.stderr[-2000:]
    found = records(tmp_path)
    assert len(found) == 6 and all(r["status"] == "ok" for r in found.values())
    assert "in batches" in result.stdout and "wrote 6 texts" in result.stdout
