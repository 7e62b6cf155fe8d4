"""benchmarks/gpu_eval.py and benchmarks/llama_server.sh on the CPU: real llama-servers (llama.cpp's
server run by xllamacpp behind llama-server's command line, tests/cpu_llama_server.py) on 127.0.0.1,
started, asked through the openai backend, counted and stopped by the real scripts. Two servers of one
slot on 2 test rows and 1 validation row of real Financial PhraseBank sentences (the suite runs on 2
cores); the rows/s figures themselves are the GPU machine's (BENCHMARKS.md), not asserted here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.gpu_eval import alive
from tests.conftest import REPO_ROOT, run_script, script_env
from tests.eval.test_labelled import write_step05
from utils.engine import default_gguf_path

SCRIPT = "benchmarks/gpu_eval.py"
STAND_IN = REPO_ROOT / "tests" / "cpu_llama_server.py"


def env() -> dict[str, str]:
    """The stand-in's `#!/usr/bin/env python3` and llama_server.sh's `python`: this interpreter."""
    return script_env(PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))


def test_two_servers_share_the_rows_agree_with_the_embedded_engine_and_stop(tmp_path, shared_data):
    write_step05(tmp_path / "sharegpt", shared_data / "financial_phrasebank" / "Sentences_AllAgree.txt", 2, 1)
    output = tmp_path / "gpu_eval.json"
    result = run_script(SCRIPT, "--cpu", "--server", STAND_IN, "--gguf", default_gguf_path(),
                        "--input", tmp_path / "sharegpt" / "test.jsonl", "--rows", "2", "--validation-rows", "1",
                        "--layouts", "2x1", "--samplers", "", "--structured", "--threads", "1",
                        "--server-arg=--chat-template", "--server-arg=gemma", "--chat-template", "gemma-3",
                        "--work", tmp_path / "work", "--output", output, env=env())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    figures = json.loads(output.read_text())
    [variant] = figures["variants"]
    assert variant["ok"] and (variant["servers"], variant["slots"]) == (2, 1)
    assert variant["ratio_to_baseline"] == 1.0 and variant["rows_per_s"] > 0
    servers = variant["per_server"]
    assert len(servers) == 2 and len({server["url"] for server in servers}) == 2
    # both servers answered (llama-server's /metrics): the 3 rows were spread over them
    assert all(server["metrics"]["tokens_predicted_total"] > 0 for server in servers), servers
    assert all(server["metrics"]["prompt_tokens_total"] > 0 for server in servers)
    assert "SERVERS=2 SERVER_SLOTS=1 bash benchmarks/llama_server.sh serve" in variant["server_command"]
    assert '"base_urls": ["' + servers[0]["url"] + '", "' + servers[1]["url"] + '"]' in variant["evaluate_command"]
    # every server is stopped, and nothing answers on its port
    assert variant["all_stopped"] and not any(alive(server["pid"]) for server in servers)
    assert (tmp_path / "work" / "2x1" / "server.log").is_file() and (tmp_path / "work" / "2x1" / "server-2.log").is_file()
    embedded = figures["embedded"]
    assert embedded["ok"] and embedded["threads"] == 1 and embedded["rows"] == 2
    agreement = variant["agreement_with_embedded"]
    assert {"class_agreement", "rows_compared", "identical_answers", "passed"} <= set(agreement)
    assert agreement["rows_compared"] <= 3
    assert figures["winner"] is None and figures["on_gpu"] is False and figures["complete"] is True
    assert "| 2x1 | 2 × 1 | – |" in result.stdout and "winner: none" in result.stdout
    table = run_script(SCRIPT, "--table", output, env=env())
    assert table.returncode == 0 and "| 2x1 | 2 × 1 | – |" in table.stdout


def test_a_server_that_cannot_load_is_recorded_and_the_run_fails(tmp_path):
    bad = tmp_path / "not_a_model.gguf"
    bad.write_text("not a GGUF\n")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"text": "Net sales fell.", "label": "negative"}) + "\n")
    output = tmp_path / "gpu_eval.json"
    result = run_script(SCRIPT, "--cpu", "--server", STAND_IN, "--gguf", bad, "--input", rows, "--source", "",
                        "--layouts", "2x1", "--samplers", "", "--threads", "1", "--work", tmp_path / "work",
                        "--output", output, env=env())
    assert result.returncode == 1
    figures = json.loads(output.read_text())
    [variant] = figures["variants"]
    assert not variant["ok"] and "the servers did not start" in variant["error"]
    assert "stopped while loading" in (tmp_path / "work" / "2x1" / "serve.log").read_text()
    assert variant["all_stopped"] and figures["embedded"]["ok"] is False
    # an existing results file is not overwritten without --overwrite
    again = run_script(SCRIPT, "--cpu", "--server", STAND_IN, "--gguf", bad, "--input", rows,
                       "--output", output, env=env())
    assert again.returncode != 0 and "exists" in again.stderr and json.loads(output.read_text()) == figures


def layout(results: Path, **variables: str) -> str:
    """llama_server.sh's layout as a caller sourcing it sees it."""
    return subprocess.run(["bash", "-c", '. benchmarks/llama_server.sh; llama_server_layout; '
                           'echo "$SERVERS|$SERVER_SLOTS|${server_flags[*]}"'],
                          cwd=REPO_ROOT, env={**env(), "GPU_EVAL_RESULTS": str(results), **variables},
                          capture_output=True, text=True, check=True).stdout.strip()


def test_the_server_layout_is_the_measured_winner_unless_the_environment_says(tmp_path):
    results = tmp_path / "gpu_eval.json"
    assert layout(results) == "1|16|"  # nothing measured: one server of PARALLEL (16) slots
    assert layout(results, PARALLEL="4") == "1|4|"
    results.write_text(json.dumps({"winner": {"name": "8x8-backend", "servers": 8, "slots": 8,
                                              "server_flags": ["--backend-sampling", "--samplers",
                                                               "penalties;top_k;top_p;min_p;temperature"]}}))
    assert layout(results) == "8|8|--backend-sampling --samplers penalties;top_k;top_p;min_p;temperature"
    assert layout(results, SERVERS="2") == "2|8|--backend-sampling --samplers penalties;top_k;top_p;min_p;temperature"
    assert layout(results, SERVER_FLAGS="") == "8|8|"
    assert layout(results, SERVER_SLOTS="3", SERVER_FLAGS="--top-k 1") == "8|3|--top-k 1"
    results.write_text(json.dumps({"winner": None}))
    assert layout(results) == "1|16|"
