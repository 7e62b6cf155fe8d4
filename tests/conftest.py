"""Fixtures shared by every stage's tests: the real embedded engine, real data, real scripts."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Real data sets beside the project (../shared/data); never copied into it."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real test data not found at {SHARED_DATA} (see DEVELOPERS.md)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def embedded_engine():
    """One real llama.cpp server (Gemma 3 270M, 4 slots) for the whole test session."""
    from utils.engine import EmbeddedEngine, EngineSettings

    with EmbeddedEngine(EngineSettings(n_parallel=4, n_ctx=8192)) as engine:
        yield engine


def script_env(**extra: str) -> dict[str, str]:
    """Environment for running a stage script as a subprocess from any working directory."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_script(script: str, *args: str, cwd: Path | None = None, timeout: float = 600,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python <repo>/<script> args...`, capturing text output."""
    return subprocess.run([sys.executable, str(REPO_ROOT / script), *map(str, args)],
                          cwd=cwd or REPO_ROOT, env=env or script_env(), capture_output=True,
                          text=True, timeout=timeout)


def read_split(folder: Path, split: str) -> list[dict]:
    """The records of a step 05 split file."""
    return [json.loads(line) for line in (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
