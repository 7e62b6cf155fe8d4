"""Ctrl-C, as a terminal sends it (SIGINT to a real subprocess) in the middle of real work: the
script prints the one `interrupted:` line (no traceback, no asyncio noise), exits 130 and keeps
what it had written; a rerun continues."""
from __future__ import annotations

import csv
import json
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import REPO_ROOT, script_env
from tests.fault_server import FaultServer
from tests.finetune_fixtures import llama_cpp_vendor, sharegpt_splits, tiny_llama  # noqa: F401
from tests.labeller_support import fast_config, numbered_articles, provider, write_config, write_export

INTERRUPTED = "interrupted: what was written so far is kept; rerun to continue"


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def interrupt_when(command: list[str], cwd: Path, ready: Callable[[], bool],
                   timeout: float = 120) -> subprocess.CompletedProcess:
    """Start `command`; once `ready()`, send SIGINT; return what it printed and its exit code."""
    process = subprocess.Popen(command, cwd=cwd, env=script_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, f"it ended before the interrupt: {process.communicate()[1][-2000:]}"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def assert_quiet_interrupt(result: subprocess.CompletedProcess) -> None:
    assert_quiet_interrupt_with(result, INTERRUPTED)
    assert result.stderr.strip().splitlines()[-1] == INTERRUPTED


def assert_quiet_interrupt_with(result: subprocess.CompletedProcess, start: str) -> None:
    assert result.returncode == 130, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(start), result.stderr[-3000:]
    noise = [line for line in lines if "Traceback" in line or " ERROR " in line or "never retrieved" in line
             or "CancelledError" in line or "KeyboardInterrupt" in line]
    assert noise == [], result.stderr[-3000:]


def _labelled_csv(path: Path, articles: list[tuple[str, str]]) -> Path:
    """Step 01/02's `Article,JSON` CSV of these (title, description) texts, each with a human label."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Article", "JSON"])
        for number, (title, description) in enumerate(articles):
            answer = {"reasoning": "templated", "sentiment": 0.5 if number % 2 else -0.5, "confidence": 0.9}
            writer.writerow([f"{title}. {description}", json.dumps(answer)])
    return path


@pytest.mark.parametrize("script, batch", [("step_03_label_articles.py", False), ("step_03_label_articles.py", True),
                                           ("step_03b_explain_labels.py", False)],
                         ids=["news-sync", "news-batch", "explain-sync"])
def test_labelling_ctrl_c_is_one_line_and_keeps_the_records(tmp_path, script, batch):
    articles = numbered_articles(80, prefix="Sigco")
    if script == "step_03_label_articles.py":
        source, written = ["--input", str(write_export(tmp_path / "news" / "export.csv", articles))], "labelled articles"
    else:
        source, written = ["tweets", "--input", str(_labelled_csv(tmp_path / "step_01.csv", articles))], "explained rows"
    results, output = tmp_path / "labels.jsonl", tmp_path / "labelled.csv"
    with FaultServer(latency_s=0.3, batch_request_s=0.3) as server:
        config = write_config(tmp_path / "config.yaml", fast_config(
            [provider("openai", server)], max_in_flight=4,
            batch_poll_initial_s=0.05, batch_poll_max_s=0.1))
        command = [sys.executable, str(REPO_ROOT / "dataset_builder" / script), "--config", str(config), *source,
                   "--results", str(results), "--output", str(output), "--no-progress",
                   *(["--batch"] if batch else [])]
        result = interrupt_when(command, tmp_path, lambda: _lines(results) >= (1 if batch else 3))
        assert_quiet_interrupt(result)
        kept = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
        assert kept
        rerun = subprocess.run(command, cwd=tmp_path, env=script_env(), capture_output=True, text=True,
                               timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"wrote 80 {written}" in rerun.stdout


def test_batch_jobs_ctrl_c_while_the_provider_answers_nothing_is_one_line(tmp_path):
    """`batch_jobs.py status` asks the provider about an open batch; it takes the connection and
    never answers, so the Ctrl-C comes while the script waits on it."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        config = write_config(tmp_path / "config.yaml", fast_config([{
            "name": "silent", "kind": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "models": ["m"],
            "timeout_s": 600}]))
        results = tmp_path / "labels.jsonl"
        results.write_text(json.dumps({"kind": "batch", "input_file_id": "file-1", "batch_id": "batch-1",
                                       "state": "submitted", "provider": "silent", "model": "m", "ids": ["a"]})
                           + "\n", encoding="utf-8")
        command = [sys.executable, str(REPO_ROOT / "dataset_builder" / "batch_jobs.py"), "status",
                   "--config", str(config), "--results", str(results)]
        result = interrupt_when(command, tmp_path, lambda: bool(select.select([silent], [], [], 0)[0]))
    assert_quiet_interrupt(result)
    assert results.read_text(encoding="utf-8").count("\n") == 1  # status writes nothing


def test_evaluate_labelled_ctrl_c_is_one_line_and_keeps_the_predictions(tmp_path):
    rows = "".join(f"Company {n} reports quarter number {n},{'positive' if n % 2 else 'negative'}\n"
                   for n in range(60))
    labelled = tmp_path / "labelled.csv"
    labelled.write_text("text,label\n" + rows, encoding="utf-8")
    out = tmp_path / "eval"
    with FaultServer(latency_s=0.3) as server:
        model = json.dumps({"backend": "openai", "model": "test-model", "base_urls": [server.base_url]})
        command = [sys.executable, str(REPO_ROOT / "eval" / "evaluate_labelled.py"), "--input", str(labelled),
                   "--output", str(out), "--model", model, "--no-progress", "--validation-fraction", "0.2"]
        cache = out / "predictions.cache.jsonl"
        result = interrupt_when(command, tmp_path, lambda: _lines(cache) >= 3)
    assert_quiet_interrupt(result)
    assert _lines(cache) >= 3


@pytest.mark.slow
def test_train_ctrl_c_names_the_checkpoint_resume_continues_from(tmp_path, tiny_llama, sharegpt_splits):  # noqa: F811
    output = tmp_path / "run"
    checkpoints = output / "checkpoints"
    command = [sys.executable, str(REPO_ROOT / "finetune" / "train.py"), "--backend", "hf", "--family", "llama-3",
               "--base-model", str(tiny_llama), "--train", str(sharegpt_splits["train"]), "--validation",
               str(sharegpt_splits["validation"]), "--output-dir", str(output), "--max-steps", "1000",
               "--max-seq-length", "256", "--set", "finetune.batch_size=4", "--set", "finetune.save_steps=2",
               "--set", "finetune.eval_steps=1000", "--set", "finetune.gradient_accumulation_steps=1"]
    def saved() -> bool:
        return any((path / "trainer_state.json").is_file() for path in checkpoints.glob("checkpoint-*"))

    result = interrupt_when(command, tmp_path, saved, timeout=600)
    assert_quiet_interrupt_with(result, "interrupted: rerun with --resume to continue from ")
    last = Path(result.stderr.strip().splitlines()[-1].rsplit(" ", 1)[-1])
    assert last.parent == checkpoints and (last / "trainer_state.json").is_file()
