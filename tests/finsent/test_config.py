import ast
import re
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from finsent.cli import config_from_args
from finsent.config import FinsentConfig, load_config
from tests.conftest import REPO_ROOT
from utils.cli import stage_parser
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


# --- one definition per key: config.yaml and the scripts' flags against the pydantic fields --------

# What to evaluate is the user's choice, not a default: config.yaml names the embedded models, the
# code none (the reports then read every model folder there is).
CHOSEN_IN_CONFIG_YAML = {("eval", "models_to_test"), ("eval", "comparison_pairs")}


def _leaves(data: dict, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    leaves = {}
    for key, value in data.items():
        if isinstance(value, dict) and value and prefix + (key,) != ("eval", "quantization_families"):
            leaves.update(_leaves(value, prefix + (key,)))
        else:
            leaves[prefix + (key,)] = value
    return leaves


def test_config_yaml_restates_every_default_and_changes_none(repo_root, tmp_path, monkeypatch):
    with_file = _leaves(load_config(repo_root / "config.yaml").model_dump(mode="json"))
    monkeypatch.chdir(tmp_path)  # no ./config.yaml: the built-in defaults
    without = _leaves(load_config().model_dump(mode="json"))
    differing = {".".join(key): (with_file[key], without[key]) for key in without
                 if key not in CHOSEN_IN_CONFIG_YAML and with_file[key] != without[key]}
    assert differing == {}
    written = _leaves(yaml.safe_load((repo_root / "config.yaml").read_text(encoding="utf-8")))
    assert sorted(".".join(key) for key in without if key not in written
                  and not any(key[:len(w)] == w for w in written)) == []


def _field(path: str):
    """The pydantic field a dotted config key names, or None."""
    model, annotation = FinsentConfig, None
    for part in path.split("."):
        if model is None or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return annotation


SCRIPTS = sorted(path for folder in ("dataset_builder", "eval", "finetune")
                 for path in (REPO_ROOT / folder).glob("*.py") if 'if __name__ == "__main__"' in path.read_text())
# "(eval.sample_size)", "default: eval.parallel_requests": the flag stands for that key
DEFAULT_FROM_CONFIG = re.compile(r"(?:\(|default: |else )(?:dataset|finetune|eval)\.[a-z0-9_.]+\)?")
CONFIG_KEY_IN_HELP = re.compile(r"(?<![\w/])((?:dataset|finetune|eval)\.[a-z0-9_]+(?:\.[a-z0-9_]+)*)")


def _flags(tree: ast.Module) -> dict[str, ast.Call]:
    flags = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument":
            names = [arg.value for arg in node.args if isinstance(arg, ast.Constant)]
            dest = next((kw.value.value for kw in node.keywords if kw.arg == "dest"), None)
            long = next((name for name in names if name.startswith("--")), None)
            if dest or long:
                flags[dest or long[2:].replace("-", "_")] = node
    return flags


def _default_is_none(call: ast.Call) -> bool:
    """Not given, the flag says nothing: argparse's None (a store_true flag needs default=None)."""
    keywords = {kw.arg: kw.value for kw in call.keywords}
    if "default" in keywords:
        return isinstance(keywords["default"], ast.Constant) and keywords["default"].value is None
    action = keywords.get("action")
    return not (isinstance(action, ast.Constant) and action.value in ("store_true", "store_false", "count"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_a_flag_that_sets_a_config_key_names_a_real_field_and_leaves_the_key_alone_when_not_given(script):
    tree = ast.parse(script.read_text(encoding="utf-8"))
    flags = _flags(tree)
    problems = []
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "config_from_args" and len(call.args) > 1):
            continue
        for mapping in (node for node in ast.walk(call.args[1]) if isinstance(node, ast.Dict)):
            for key, value in zip(mapping.keys, mapping.values):
                if _field(key.value) is None:
                    problems.append(f"{key.value}: no such config key")
                for dest in {n.attr for n in ast.walk(value) if isinstance(n, ast.Attribute)
                             and getattr(n.value, "id", None) == "args"}:
                    if dest in flags and not _default_is_none(flags[dest]):
                        problems.append(f"--{dest.replace('_', '-')} ({key.value}) has a default of its own")
    for dest, call in flags.items():
        help_text = " ".join(kw.value.value for kw in call.keywords if kw.arg == "help" and isinstance(kw.value, ast.Constant))
        named = CONFIG_KEY_IN_HELP.findall(help_text)
        problems += [f"--{dest.replace('_', '-')}'s help names {key}: no such config key" for key in named if _field(key) is None]
        if DEFAULT_FROM_CONFIG.search(help_text) and not _default_is_none(call):
            problems.append(f"--{dest.replace('_', '-')} ({named[0]}) has a default of its own")
    assert problems == []
