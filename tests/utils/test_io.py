import os
import stat

import pytest

from utils.io import JsonlAppender, atomic_dir, atomic_path, atomic_write_text, read_jsonl


def test_atomic_write_replaces_whole_and_has_the_usual_mode(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "kept")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "kept"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_torn_last_line_is_dropped_and_repaired_on_append(tmp_path):
    path = tmp_path / "r.jsonl"
    with JsonlAppender(path) as out:
        out.append({"id": 1})
    with open(path, "a") as handle:
        handle.write('{"id": 2, "sta')  # a kill -9 mid-line
    assert read_jsonl(path) == [{"id": 1}]
    with JsonlAppender(path) as out:
        out.append({"id": 3})
    assert read_jsonl(path) == [{"id": 1}, {"id": 3}]


def test_a_complete_last_record_without_its_newline_is_torn(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": 1}\n{"id": 2}', encoding="utf-8")  # killed before the newline
    assert read_jsonl(path) == [{"id": 1}, {"id": 2}]  # a file a person wrote may end so
    assert read_jsonl(path, complete_lines_only=True) == [{"id": 1}]
    with JsonlAppender(path) as out:  # the appender cuts that line too: the two agree
        out.append({"id": 3})
    assert read_jsonl(path, complete_lines_only=True) == [{"id": 1}, {"id": 3}]


def test_corrupt_line_in_the_middle_is_an_error_naming_it(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": 1}\nnot json\n{"id": 3}\n')
    with pytest.raises(ValueError, match=r"r.jsonl: line 2"):
        read_jsonl(path)


def test_a_line_cut_inside_a_character_is_torn_and_elsewhere_an_error(tmp_path):
    path = tmp_path / "r.jsonl"
    whole = '{"id": 1, "text": "€5 bn"}\n'.encode()
    cut = whole[:whole.index("€".encode()) + 1]  # killed after the euro sign's first byte
    path.write_bytes(whole + cut)
    assert read_jsonl(path) == [{"id": 1, "text": "€5 bn"}]
    path.write_bytes(cut + b"\n" + whole)
    with pytest.raises(ValueError, match=r"r.jsonl: line 1 is not valid UTF-8"):
        read_jsonl(path)


def test_atomic_dir_swaps_a_finished_folder_in_and_leaves_the_old_one_on_error(tmp_path):
    target = tmp_path / "merged"
    with atomic_dir(target) as partial:
        (partial / "weights").write_text("first")
    assert (target / "weights").read_text() == "first"
    with pytest.raises(RuntimeError), atomic_dir(target) as partial:
        (partial / "weights").write_text("half")
        raise RuntimeError("killed while saving")
    assert (target / "weights").read_text() == "first"
    with atomic_dir(target) as partial:
        (partial / "weights").write_text("second")
    assert (target / "weights").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"]  # no temp or swapped-out folder left
