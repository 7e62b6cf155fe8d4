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


def llama_cpp_dir(explicit: Path | None = None) -> Path:
    """The folder that holds convert_hf_to_gguf.py, gguf-py/ and models/."""
    given = explicit or (Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else None)
    if given is not None:
        return _from_given(Path(given))
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
    log.info("fetching llama-cpp-python %s's source distribution for its GGUF converter", version)
    result = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:",
                             "--no-deps", f"llama-cpp-python=={version}", "-d", str(target)],
                            capture_output=True, text=True)
    found = sorted(target.glob("llama_cpp_python-*.tar.gz"))
    if result.returncode != 0 or not found:
        reason = (result.stderr.strip().splitlines() or ["no file"])[-1]
        raise FinsentError(f"llama.cpp's converter not found and pip could not fetch llama-cpp-python=={version}'s "
                           f"sdist ({reason}); set finetune.llama_cpp_source or {ENV_VAR} to the sdist or "
                           f"a folder with {CONVERTER}")
    return found[0]


def _unpack(sdist: Path, destination: Path) -> Path:
    """Extract the converter's files of `sdist` into `destination` (atomically)."""
    vendor = destination / "vendor" / "llama.cpp"
    if (vendor / CONVERTER).is_file():
        return vendor
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=destination.name + ".", dir=destination.parent))
    with tarfile.open(sdist) as archive:
        members = []
        for member in archive.getmembers():
            parts = member.name.split("/", 1)
            inner = parts[1] if len(parts) == 2 else ""
            if inner.startswith("vendor/llama.cpp/") and inner.removeprefix("vendor/llama.cpp/").startswith(WANTED):
                member.name = inner
                members.append(member)
        if not members:
            raise FinsentError(f"{sdist}: no vendor/llama.cpp/{CONVERTER} inside (not llama-cpp-python's sdist?)")
        archive.extractall(staging, members=members, filter="data")
    try:
        staging.rename(destination)
    except OSError:  # another process unpacked it first
        shutil.rmtree(staging, ignore_errors=True)
    return vendor
