"""benchmarks/server_build.sh, as gpu_quality.sh and gpu_quality_pair.sh call it: whether a CUDA
llama-server build starts, and what the measuring then uses. This machine has no GPU, so the driver's
`nvidia-smi` (and, for the reuse, a built server) are stand-ins named *_MOCK; the build script itself
runs for real, on a source it refuses at once (no nvcc, or CMake stops on its CMakeLists.txt)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

FUNCTIONS = REPO_ROOT / "benchmarks" / "server_build.sh"
SHOW = 'echo "LLAMA_SERVER=${LLAMA_SERVER:-}"'  # what the measuring then uses (empty: the embedded engine)


def path_without_nvidia_smi() -> str:
    return os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                           if d and not (Path(d) / "nvidia-smi").exists())


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def fake_nvidia_smi_MOCK(tmp_path: Path) -> str:
    """A PATH whose first folder holds an `nvidia-smi` that lists one GPU, as the driver's does."""
    executable(tmp_path / "mockbin" / "nvidia-smi", "#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-mock)'\n")
    return f"{tmp_path / 'mockbin'}{os.pathsep}{path_without_nvidia_smi()}"


def functions(snippet: str, path: str, **env: str) -> subprocess.CompletedProcess:
    """SNIPPET run by bash with server_build.sh sourced, from the repo root (as the scripts run)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("LLAMA_SERVER", "SERVER_SOURCE", "SERVER_BUILD")}
    return subprocess.run(["bash", "-c", f'set -euo pipefail; . "{FUNCTIONS}"; {snippet}'], cwd=REPO_ROOT,
                          env={**clean, "PATH": path, **env}, capture_output=True, text=True, timeout=60)


def source_tree(tmp_path: Path) -> Path:
    """A folder taken for llama.cpp's source (it has CMakeLists.txt) whose configure fails at once."""
    executable(tmp_path / "src" / "CMakeLists.txt", 'message(FATAL_ERROR "not llama.cpp")\n')
    return tmp_path / "src"


def converter_copy(tmp_path: Path) -> Path:
    """The converter-only llama.cpp folder the GPU machine's FINSENT_LLAMA_CPP_SOURCE names: no CMakeLists.txt."""
    (tmp_path / "converter").mkdir()
    (tmp_path / "converter" / "convert_hf_to_gguf.py").write_text("")
    return tmp_path / "converter"


def no_build_in(work: Path) -> bool:
    return not any((work / name).exists() for name in ("server", "server.pid", "server.built", "server.log"))


def test_no_gpu_listed_no_build(tmp_path):
    work = tmp_path / "work"
    done = functions(f'gpu_listed && echo listed; server_build_auto "{work}"', path_without_nvidia_smi(),
                     SERVER_SOURCE=str(source_tree(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
    assert no_build_in(work)


@pytest.mark.parametrize("env", [{"SERVER_BUILD": "0"}, {"LLAMA_SERVER": "/opt/llama-server"}])
def test_no_build_when_turned_off_or_a_server_is_named(tmp_path, env):
    work = tmp_path / "work"
    done = functions(f'server_build_auto "{work}"', fake_nvidia_smi_MOCK(tmp_path),
                     SERVER_SOURCE=str(source_tree(tmp_path)), **env)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert no_build_in(work)


def test_a_source_without_cmakelists_warns_once_and_builds_nothing(tmp_path):
    work, converter_only = tmp_path / "work", converter_copy(tmp_path)
    done = functions(f'server_build_auto "{work}"', fake_nvidia_smi_MOCK(tmp_path), SERVER_SOURCE=str(converter_only))
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: "), done.stderr
    assert f"SERVER_SOURCE {converter_only}" in lines[0] and "CMakeLists.txt" in lines[0] and "CPUs" in lines[0]
    assert no_build_in(work)


def test_a_failed_build_is_waited_for_and_leaves_the_embedded_engine(tmp_path):
    work = tmp_path / "work"
    done = functions(f'server_build_auto "{work}"; server_build_use "{work}"; {SHOW}',
                     fake_nvidia_smi_MOCK(tmp_path), SERVER_SOURCE=str(source_tree(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert "building CUDA llama-server" in done.stdout and done.stdout.splitlines()[-1] == "LLAMA_SERVER="
    assert (work / "server.built").read_text().strip() != "0"
    assert "error" in (work / "server.log").read_text().lower()
    assert done.stderr.count("\n") == 1 and f"{work}/server.log" in done.stderr, done.stderr


def test_the_default_source_is_llama_server_sources_and_a_converter_only_folder_builds_nothing(tmp_path):
    work, converter_only = tmp_path / "work", converter_copy(tmp_path)
    python_first = f"{Path(sys.executable).parent}{os.pathsep}{fake_nvidia_smi_MOCK(tmp_path)}"
    done = functions(f'server_build_auto "{work}"', python_first, FINSENT_LLAMA_CPP_SOURCE=str(converter_only))
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("warning: ") and done.stderr.count("\n") == 1, done.stderr
    assert f"llama.cpp source {converter_only}: neither llama-cpp-python's sdist" in done.stderr
    assert "set SERVER_SOURCE" in done.stderr
    assert no_build_in(work)


@pytest.mark.parametrize("status", ["0", "1"])
def test_use_takes_the_server_only_from_a_build_that_succeeded(tmp_path, status):
    work = tmp_path / "work"
    executable(work / "server" / "llama-server", "#!/bin/sh\nexit 0\n")
    (work / "server.built").write_text(status + "\n")
    done = functions(f'server_build_use "{work}"; {SHOW}', path_without_nvidia_smi())
    assert done.returncode == 0, done.stderr
    if status == "0":
        assert done.stdout.strip() == f"LLAMA_SERVER={work}/server/llama-server" and done.stderr == ""
    else:
        assert done.stdout.strip() == "LLAMA_SERVER="
        assert done.stderr.startswith("warning: ") and done.stderr.count("\n") == 1
        assert f"{work}/server.log" in done.stderr and "embedded engine" in done.stderr


def test_use_without_a_build_does_nothing(tmp_path):
    done = functions(f'server_build_use "{tmp_path}"; {SHOW}', path_without_nvidia_smi())
    assert (done.returncode, done.stdout, done.stderr) == (0, "LLAMA_SERVER=\n", "")


def test_a_finished_build_is_reused_not_rebuilt(tmp_path):
    work = tmp_path / "work"
    llama_server_MOCK = executable(work / "server" / "llama-server",
                                   '#!/bin/sh\n[ "$1" = --version ] && echo "version: mock"\n')
    done = functions(f'server_build_start "{work}" "{tmp_path}/absent"; server_build_use "{work}"; {SHOW}',
                     path_without_nvidia_smi())
    assert done.returncode == 0, done.stderr
    assert "reusing" in done.stdout and done.stdout.splitlines()[-1] == f"LLAMA_SERVER={llama_server_MOCK}"
    assert not (work / "server.pid").exists() and not (work / "server.log").exists()


def test_a_build_under_way_is_left_to_finish_not_started_again(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    under_way = subprocess.Popen(["sleep", "30"])  # stands for the build process server.pid names
    try:
        (work / "server.pid").write_text(f"{under_way.pid}\n")
        done = functions(f'server_build_start "{work}" "{source_tree(tmp_path)}"', path_without_nvidia_smi())
        assert done.returncode == 0, done.stderr
        assert "goes on" in done.stdout
        assert (work / "server.pid").read_text().strip() == str(under_way.pid) and not (work / "server.log").exists()
    finally:
        under_way.kill()
        under_way.wait()
