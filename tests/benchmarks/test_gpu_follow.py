"""benchmarks/gpu_follow.sh, the way a device call uses it: a command started detached in a copy
of the repo outlives the call that started it, and later calls follow it and bring back its files."""
from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "gpu_follow.sh"
# Writes one result, then (released by the test) a second, and ends with the exit status it is given.
JOB = ("mkdir -p run && echo '{\"step\": 1}' > run/first.json && echo training > run/train.log && "
       "while [ ! -f release ]; do sleep 0.2; done && echo '{\"step\": 2}' > run/second.json && exit $0")


def follow(repo: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COPY": str(tmp_path / "copy"), "OUT": str(tmp_path / "out")}
    (tmp_path / "out").mkdir(exist_ok=True)
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=repo, env=env, capture_output=True, text=True, timeout=60)


def packed(tmp_path: Path) -> set[str]:
    with tarfile.open(tmp_path / "out" / "follow.tgz") as archive:
        return set(archive.getnames())


def a_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / ".gpu").mkdir(parents=True)
    (repo / ".gpu" / "bundle.tar").write_text("carried, not copied")
    (repo / "config.yaml").write_text("seed: 1\n")
    return repo


@pytest.fixture
def released(tmp_path):
    """However the test ends, the detached job is released and ends."""
    yield
    if (tmp_path / "copy").is_dir():
        (tmp_path / "copy" / "release").touch()


def test_a_detached_command_outlives_its_call_and_later_calls_bring_back_its_files(tmp_path, released):
    repo = a_repo(tmp_path)
    started = follow(repo, tmp_path, "start", "2", "run/*.json run/*.log", "--", "bash", "-c", JOB, "3")
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip().endswith("running")
    assert "=== ./run/train.log" in started.stdout and "training" in started.stdout
    assert packed(tmp_path) == {"follow.log", "run/first.json", "run/train.log"}
    copy = tmp_path / "copy"
    assert (copy / "config.yaml").is_file() and not (copy / ".gpu").exists()

    (copy / "release").touch()  # the job goes on after the call that started it has returned
    polled = follow(repo, tmp_path, "poll", "30", "run/*.json")
    assert polled.returncode == 0, polled.stderr
    assert polled.stdout.strip().endswith("finished (exit 3)")
    assert packed(tmp_path) == {"follow.log", "run/first.json", "run/second.json"}

    again = follow(repo, tmp_path, "start", "1", "", "--", "bash", "-c", JOB, "0")  # the last one has ended
    assert again.returncode == 0 and again.stdout.strip().endswith("running")
    blocked = follow(repo, tmp_path, "start", "0", "", "--", "true")
    assert blocked.returncode == 2 and blocked.stderr.startswith("error: a command is already running")
    (copy / "release").touch()
    assert follow(repo, tmp_path, "poll", "30", "").stdout.strip().endswith("finished (exit 0)")


def test_bad_arguments_are_one_line_errors(tmp_path):
    repo = a_repo(tmp_path)
    for args, expected in ((["stop"], "the first argument is start or poll"),
                           (["poll", "soon"], "SECONDS: expected a whole number"),
                           (["start", "5", ""], "start needs a command"),
                           (["poll", "5", ""], "nothing was started")):
        result = follow(repo, tmp_path, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith(f"error: {expected}") and result.stderr.count("\n") == 1, result.stderr
