"""llama.cpp's Python tools (the `convert_hf_to_gguf.py` converter, its `conversion/` package,
`gguf-py`, the vocab test files) from llama-cpp-python's source distribution: no git clone.

Where they are found, first match wins:
1. `finetune.llama_cpp_source` or the FINSENT_LLAMA_CPP_SOURCE environment variable: the sdist
   (`llama_cpp_python-X.tar.gz`) or a folder holding `convert_hf_to_gguf.py` (an unpacked
   sdist's `vendor/llama.cpp`, or the sdist's top folder);
2. the unpacked copy in the finsent cache (`~/.cache/finsent/llama_cpp_python-<installed version>`);
3. `pip download --no-binary :all: --no-deps llama-cpp-python==<installed version>` (the
   package registry; pip answers from its own cache where it has the file), unpacked into (2).
The converter matches the installed llama-cpp-python, whose quantizer then reads its output.

`llama_server_source()` finds the same way the part of the vendored llama.cpp that builds its
`llama-server` with the CPU and CUDA backends (benchmarks/build_llama_server_gpu.sh): 6 MB packed,
where the whole vendored tree is 176 MB. It is kept beside the converter's copy, as
`llama_cpp_python-<version>-server`.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path

from utils.engine import cache_dir
from utils.errors import FinsentError

log = logging.getLogger(__name__)

ENV_VAR = "FINSENT_LLAMA_CPP_SOURCE"
CONVERTER = "convert_hf_to_gguf.py"
# What the converter needs of the sdist (plus the small vocab files tests load as tokenizers).
WANTED = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/", "models/ggml-vocab-")


def installed_version() -> str:
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        raise FinsentError("llama-cpp-python is not installed (pip install -r requirements-finetune.txt): "
                           "its quantizer makes the k-quants") from None


def _given(explicit: Path | None) -> Path | None:
    """The source the caller or FINSENT_LLAMA_CPP_SOURCE names, if any."""
    return Path(explicit) if explicit else (Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else None)


def llama_cpp_dir(explicit: Path | None = None) -> Path:
    """The folder that holds convert_hf_to_gguf.py, gguf-py/ and models/."""
    given = _given(explicit)
    if given is not None:
        return _from_given(given)
    version = installed_version()
    unpacked = cache_dir() / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
    if (unpacked / CONVERTER).is_file():
        return unpacked
    sdist = _pip_download(version)
    return _unpack(sdist, unpacked.parents[1])


def _from_given(path: Path) -> Path:
    if path.is_file() and path.name.endswith(".tar.gz"):
        return _unpack(path, cache_dir() / path.name.removesuffix(".tar.gz"))
    for folder in (path, path / "vendor" / "llama.cpp"):
        if (folder / CONVERTER).is_file():
            return folder
    raise FinsentError(f"llama.cpp source {path}: neither llama-cpp-python's sdist (.tar.gz) nor a folder "
                       f"with {CONVERTER} (set finetune.llama_cpp_source or {ENV_VAR})")


def _pip_download(version: str) -> Path:
    target = Path(tempfile.mkdtemp(prefix="llama-cpp-sdist-"))
    log.info("fetching llama-cpp-python %s's source distribution (its vendored llama.cpp)", version)
    result = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:",
                             "--no-deps", f"llama-cpp-python=={version}", "-d", str(target)],
                            capture_output=True, text=True)
    found = sorted(target.glob("llama_cpp_python-*.tar.gz"))
    if result.returncode != 0 or not found:
        reason = (result.stderr.strip().splitlines() or ["no file"])[-1]
        raise FinsentError(f"llama.cpp's source not found and pip could not fetch llama-cpp-python=={version}'s "
                           f"sdist ({reason}); set finetune.llama_cpp_source or {ENV_VAR} to the sdist or "
                           f"an unpacked copy of it")
    return found[0]


# What building llama-server needs (paths under vendor/llama.cpp/): the build's own tree, and of
# ggml only its core and the CPU, CUDA and BLAS backends.
SERVER_TREE = ("CMakeLists.txt", "cmake/", "common/", "include/", "src/", "vendor/", "tools/", "app/", "scripts/",
               "licenses/", "LICENSE", "ggml/CMakeLists.txt", "ggml/cmake/", "ggml/include/", "ggml/src/ggml-cpu/",
               "ggml/src/ggml-cuda/", "ggml/src/ggml-blas/")


def _is_wanted(relative: str) -> bool:
    """Of models/, only the vocab GGUFs (not their test inputs and outputs)."""
    return relative.startswith(WANTED) and (not relative.startswith("models/") or relative.endswith(".gguf"))


def _is_server_source(relative: str) -> bool:
    """SERVER_TREE, and the files directly in ggml/src/ (its core; not the other backends' folders)."""
    ggml_core = relative.startswith("ggml/src/") and "/" not in relative.removeprefix("ggml/src/")
    return relative.startswith(SERVER_TREE) or ggml_core


def llama_server_source(explicit: Path | None = None) -> Path:
    """A folder with llama.cpp's CMakeLists.txt and what building llama-server needs (see the header)."""
    given = _given(explicit)
    if given is not None and not given.name.endswith(".tar.gz"):
        for folder in (given, given / "vendor" / "llama.cpp"):
            if (folder / "CMakeLists.txt").is_file():
                return folder
        raise FinsentError(f"llama.cpp source {given}: neither llama-cpp-python's sdist (.tar.gz) nor a folder "
                           f"with llama.cpp's CMakeLists.txt (set {ENV_VAR})")
    name = given.name.removesuffix(".tar.gz") if given else f"llama_cpp_python-{installed_version()}"
    unpacked = cache_dir() / f"{name}-server" / "vendor" / "llama.cpp"
    if (unpacked / "CMakeLists.txt").is_file():
        return unpacked
    if given is not None and not given.is_file():
        raise FinsentError(f"llama.cpp source {given}: not found (set {ENV_VAR})")
    sdist = given or _pip_download(installed_version())
    return _unpack(sdist, unpacked.parents[1], _is_server_source, "CMakeLists.txt")


def _unpack(sdist: Path, destination: Path, wanted=_is_wanted, marker: str = CONVERTER) -> Path:
    """Extract the files of `sdist`'s vendor/llama.cpp that `wanted` takes into `destination`
    (atomically); `marker` is the file that says the copy is complete."""
    vendor = destination / "vendor" / "llama.cpp"
    if (vendor / marker).is_file():
        return vendor
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=destination.name + ".", dir=destination.parent))
    with tarfile.open(sdist) as archive:
        members = []
        for member in archive.getmembers():
            parts = member.name.split("/", 1)
            inner = parts[1] if len(parts) == 2 else ""
            relative = inner.removeprefix("vendor/llama.cpp/")
            if inner.startswith("vendor/llama.cpp/") and wanted(relative):
                member.name = inner
                members.append(member)
        if not any(member.name == f"vendor/llama.cpp/{marker}" for member in members):
            raise FinsentError(f"{sdist}: no vendor/llama.cpp/{marker} inside (not llama-cpp-python's sdist?)")
        archive.extractall(staging, members=members, filter="data")
    try:
        staging.rename(destination)
    except OSError:  # another process unpacked it first
        shutil.rmtree(staging, ignore_errors=True)
    return vendor
