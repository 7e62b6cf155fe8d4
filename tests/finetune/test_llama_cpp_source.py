"""finetune/llama_cpp_source.py on a real archive laid out as llama-cpp-python's sdist: the converter's
copy and llama-server's build tree (what benchmarks/build_llama_server_gpu.sh builds on a GPU machine)
each take their files of vendor/llama.cpp and nothing else, once, into the finsent cache."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from finetune.llama_cpp_source import llama_cpp_dir, llama_server_source
from utils.errors import FinsentError

SDIST_FILES = {  # under llama_cpp_python-9.9.9/vendor/llama.cpp/
    "CMakeLists.txt": "project(llama.cpp)\n", "convert_hf_to_gguf.py": "# the converter\n",
    "conversion/base.py": "", "gguf-py/gguf/__init__.py": "", "common/common.cpp": "", "tools/server/server.cpp": "",
    "src/llama.cpp": "", "ggml/CMakeLists.txt": "", "ggml/src/ggml.c": "", "ggml/src/CMakeLists.txt": "",
    "ggml/src/ggml-cuda/ggml-cuda.cu": "", "ggml/src/ggml-cpu/ggml-cpu.c": "", "ggml/src/ggml-vulkan/vulkan.cpp": "",
    "models/ggml-vocab-llama-bpe.gguf": "gguf", "models/ggml-vocab-llama-bpe.gguf.inp": "test input",
    "docs/build.md": "",
}
SERVER_TREE = {"CMakeLists.txt", "common/common.cpp", "tools/server/server.cpp", "src/llama.cpp", "ggml/CMakeLists.txt",
               "ggml/src/ggml.c", "ggml/src/CMakeLists.txt", "ggml/src/ggml-cuda/ggml-cuda.cu",
               "ggml/src/ggml-cpu/ggml-cpu.c"}
CONVERTER_COPY = {"convert_hf_to_gguf.py", "conversion/base.py", "gguf-py/gguf/__init__.py",
                  "models/ggml-vocab-llama-bpe.gguf"}


def sdist(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(f"llama_cpp_python-9.9.9/vendor/llama.cpp/{name}")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return path


def files_in(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FINSENT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FINSENT_LLAMA_CPP_SOURCE", raising=False)
    return tmp_path / "cache"


def test_the_server_tree_and_the_converter_copy_take_only_their_files(tmp_path, cache):
    archive = sdist(tmp_path / "llama_cpp_python-9.9.9.tar.gz", SDIST_FILES)
    server = llama_server_source(archive)
    assert server == cache / "llama_cpp_python-9.9.9-server" / "vendor" / "llama.cpp"
    assert files_in(server) == SERVER_TREE  # no other backend, no docs, no models
    assert (server / "CMakeLists.txt").read_text() == "project(llama.cpp)\n"
    archive.unlink()
    assert llama_server_source(tmp_path / "llama_cpp_python-9.9.9.tar.gz") == server  # the cached copy

    converter = llama_cpp_dir(sdist(tmp_path / "llama_cpp_python-9.9.9.tar.gz", SDIST_FILES))
    assert files_in(converter) == CONVERTER_COPY


def test_a_folder_with_the_build_tree_is_used_as_it_is(tmp_path, cache, monkeypatch):
    tree = tmp_path / "checkout"
    (tree / "vendor" / "llama.cpp").mkdir(parents=True)
    (tree / "vendor" / "llama.cpp" / "CMakeLists.txt").write_text("")
    monkeypatch.setenv("FINSENT_LLAMA_CPP_SOURCE", str(tree))
    assert llama_server_source() == tree / "vendor" / "llama.cpp"
    assert not cache.exists()


def test_a_source_without_the_build_tree_is_a_one_line_error(tmp_path, cache):
    converter_only = tmp_path / "converter"
    converter_only.mkdir()
    (converter_only / "convert_hf_to_gguf.py").write_text("")
    with pytest.raises(FinsentError, match=f"llama.cpp source {converter_only}: neither llama-cpp-python's sdist"):
        llama_server_source(converter_only)
    no_cmake = sdist(tmp_path / "llama_cpp_python-9.9.8.tar.gz",
                     {name: text for name, text in SDIST_FILES.items() if name != "CMakeLists.txt"})
    with pytest.raises(FinsentError, match=r"no vendor/llama.cpp/CMakeLists.txt inside"):
        llama_server_source(no_cmake)
    assert not (cache / "llama_cpp_python-9.9.8-server").exists()
