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
                           'echo "$layout_servers|$layout_slots|${server_flags[*]}"'],
                          cwd=REPO_ROOT, env={**env(), "GPU_EVAL_RESULTS": str(results), **variables},
                          capture_output=True, text=True, check=True).stdout.strip()


def test_the_server_layout_is_the_measured_winner_unless_the_environment_says(tmp_path):
    results = tmp_path / "gpu_eval.json"
    assert layout(results) == "auto|16|"  # nothing measured: as many servers as fit, of PARALLEL (16) slots
    assert layout(results, PARALLEL="4") == "auto|4|"
    results.write_text(json.dumps({"winner": {"name": "8x8-backend", "servers": 8, "slots": 8,
                                              "server_flags": ["--backend-sampling", "--samplers",
                                                               "penalties;top_k;top_p;min_p;temperature"]}}))
    assert layout(results) == "8|8|--backend-sampling --samplers penalties;top_k;top_p;min_p;temperature"
    assert layout(results, SERVERS="2") == "2|8|--backend-sampling --samplers penalties;top_k;top_p;min_p;temperature"
    assert layout(results, SERVERS="auto").startswith("auto|8|")
    assert layout(results, SERVER_FLAGS="") == "8|8|"
    assert layout(results, SERVER_SLOTS="3", SERVER_FLAGS="--top-k 1") == "8|3|--top-k 1"
    results.write_text(json.dumps({"winner": None}))
    assert layout(results) == "auto|16|"


def auto_servers(free_mib: str, server_mib: str, most: str) -> str:
    """llama_server.sh's auto_servers FREE_MIB SERVER_MIB MAX."""
    return subprocess.run(["bash", "-c", '. benchmarks/llama_server.sh; auto_servers "$@"', "bash",
                           free_mib, server_mib, most],
                          cwd=REPO_ROOT, env=env(), capture_output=True, text=True, check=True).stdout.strip()


def test_auto_is_as_many_servers_as_fit_in_half_the_free_gpu_memory_from_1_to_the_most():
    assert auto_servers("120000", "1341", "8") == "8"  # Gemma 3 270M on an H200: 44 fit
    assert auto_servers("120000", "1341", "3") == "3"
    assert auto_servers("120000", "13311", "8") == "4"  # an 8B: 4 × 13,311 ≤ 60,000 < 5 × 13,311
    assert auto_servers("20000", "13311", "8") == "1"  # none more fits: the first one alone
    assert auto_servers("08000", "1000", "8") == "4"  # decimal, not octal
    for figures in [("0", "1341", "8"), ("120000", "0", "8"), ("[N/A]", "1341", "8"), ("", "1341", "8"),
                    ("120000", "1341 MiB", "8"), ("120000", "1341", "0"), ("-5", "1", "8")]:
        assert auto_servers(*figures) == "1", figures


def start(tmp_path: Path, path: str, **variables: str) -> subprocess.CompletedProcess:
    """start_llama_server of the stand-in with no layout set or measured, as a caller sourcing
    llama_server.sh runs it: stdout ends with the pids it started (stopped again on exit)."""
    script = ('. benchmarks/llama_server.sh; trap stop_llama_server EXIT; '
              'start_llama_server "$0" "$1" "$2" -t 1 || exit 1; '
              'echo "${#served_urls[@]} ${#served_gpu[@]} ${server_pids[*]}"')
    unset = {"SERVERS", "SERVER_SLOTS", "SERVER_FLAGS", "SERVERS_MAX", "SERVER_ON_GPU", "CUDA_VISIBLE_DEVICES"}
    variables = {**{k: v for k, v in env().items() if k not in unset}, "PATH": path,
                 "GPU_EVAL_RESULTS": str(tmp_path / "none.json"), "SERVER_SLOTS": "1", **variables}
    return subprocess.run(["bash", "-c", script, STAND_IN, default_gguf_path(), tmp_path / "server.log"],
                          cwd=REPO_ROOT, env=variables, capture_output=True, text=True, timeout=600)


def started(result: subprocess.CompletedProcess) -> list[int]:
    """The pids of a start() that succeeded: each server with its URL and GPU figure, all stopped since."""
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    urls, gpu, *pids = map(int, result.stdout.split("\n")[-2].split())
    assert urls == gpu == len(pids) and not any(alive(pid) for pid in pids)
    return pids


def test_auto_off_the_gpu_starts_one_server(tmp_path):
    result = start(tmp_path, env()["PATH"], SERVER_ON_GPU="0")
    assert len(started(result)) == 1
    assert "llama-server: 1 × 1 slots (auto: 1, not on a GPU): http://127.0.0.1:" in result.stdout


def test_auto_on_a_gpu_starts_as_many_as_its_free_memory_holds(tmp_path):
    # nvidia-smi as the driver would answer: every process holds 1,341 MiB, and GPU 3 (the first of
    # CUDA_VISIBLE_DEVICES) has 120,000 MiB free; any other GPU none
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("""#!/bin/sh
case "$*" in
  *query-compute-apps*) ps -eo pid= | awk '{print $1 ", 1341 MiB"}' ;;
  "-i 3 --query-gpu"*) echo 120000 ;;
  *query-gpu*) echo 0 ;;
esac
""")
    (bin_dir / "nvidia-smi").chmod(0o755)
    result = start(tmp_path, os.pathsep.join([str(bin_dir), env()["PATH"]]), SERVERS_MAX="2", CUDA_VISIBLE_DEVICES="3,1")
    assert len(started(result)) == 2
    assert ("llama-server: 2 × 1 slots (auto: 2 fit in half of 120,000 MiB free at 1,341 MiB each, SERVERS_MAX 2): "
            "http://127.0.0.1:") in result.stdout
    assert (tmp_path / "server.log").is_file() and (tmp_path / "server-2.log").is_file()
