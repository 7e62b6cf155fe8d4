from pathlib import Path

import pytest

from utils.cli import config_from_args, stage_parser
from utils.config import load_config
from utils.errors import FinsentError


def test_project_config_loads(repo_root):
    config = load_config(repo_root / "config.yaml")
    assert config.eval.sample_size >= 1


def test_original_study_config_loads_unchanged(shared_data):
    config = load_config(shared_data / "reference_eval_msft" / "config.yaml")
    assert len(config.eval.models_to_test) == 34
    assert len(config.eval.comparison_pairs) == 20
    assert config.eval.sample_size == 14
    assert config.eval.ticker_symbol == "MSFT"


def test_unknown_key_is_named(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text("dataset:\n  tweets_csvv: x.csv\n")
    with pytest.raises(FinsentError, match=r"unknown key 'dataset.tweets_csvv'"):
        load_config(path)
    path.write_text("colour: blue\n")
    with pytest.raises(FinsentError, match=r"unknown key 'colour'"):
        load_config(path)


def test_wrong_type_names_key_and_value(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text("sample_size: many\n")
    with pytest.raises(FinsentError, match=r"key 'eval.sample_size'.*'many'"):
        load_config(path)


def test_overrides_win_and_are_validated(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text("eval:\n  sample_size: 3\n")
    assert load_config(path, {"eval.sample_size": 7}).eval.sample_size == 7
    assert load_config(path, {"finetune.validation_file": None}).finetune.validation_file is None
    with pytest.raises(FinsentError, match="unknown key 'eval.nope'"):
        load_config(path, {"eval.nope": 1})
    with pytest.raises(FinsentError, match=r"^command line: key 'eval.sample_size': .* \(got 'many'\)"):
        load_config(path, {"eval.sample_size": "many"})


def test_set_null_clears_a_key_and_flags_not_given_change_nothing(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text("eval:\n  sample_size: 3\n")
    args = stage_parser("test").parse_args(["--config", str(path), "--set", "finetune.validation_file=null"])
    config = config_from_args(args, {"eval.sample_size": None})  # a flag the user did not give
    assert config.finetune.validation_file is None and config.eval.sample_size == 3


def test_missing_explicit_config_is_an_error(tmp_path: Path):
    with pytest.raises(FinsentError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_key_given_twice_is_an_error(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text("sample_size: 2\neval:\n  sample_size: 3\n")
    with pytest.raises(FinsentError, match="both at the top level and under 'eval'"):
        load_config(path)


def test_malformed_yaml_names_line_and_column(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text("eval:\n  sample_size: 2\n  ticker_symbol: MSFT: again\n")
    with pytest.raises(FinsentError) as raised:
        load_config(path)
    assert str(raised.value) == f"{path}: not valid YAML: line 3, column 22: mapping values are not allowed here"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\x00")
    with pytest.raises(FinsentError, match=r"config.yaml: not UTF-8 text \(byte 0: invalid start byte\)"):
        load_config(path)
