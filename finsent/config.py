"""One typed config for every stage, loaded from `config.yaml`, overridable from the CLI.

Sections: `dataset`, `finetune`, `eval`. The original study's eval config kept its keys at
the top level (`models_to_test`, `comparison_pairs`, ...); those load unchanged and land in
the `eval` section. An unknown key anywhere is an error that names it.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dataset_builder.settings import DatasetConfig
from eval.settings import EvalConfig
from finetune.settings import FinetuneConfig
from utils.errors import FinsentError
from utils.io import not_text_error

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("config.yaml")


class FinsentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="before")
    @classmethod
    def _lift_original_eval_keys(cls, data: Any) -> Any:
        """Move the original's top-level eval keys into the `eval` section."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        eval_section = dict(data.get("eval") or {})
        for key in list(data):
            if key in EvalConfig.model_fields:
                if key in eval_section:
                    raise ValueError(f"'{key}' is given both at the top level and under 'eval'")
                eval_section[key] = data.pop(key)
        if eval_section:
            data["eval"] = eval_section
        return data


def _describe(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{where}'"
    if not where:
        return f"{source}: {first['msg']}"
    return f"{source}: key '{where}': {first['msg']} (got {first.get('input')!r})"


def _source(error: ValidationError, path: Path, overrides: dict[str, Any]) -> str:
    """Where the first invalid key came from: the command line (a `--set` or a flag), else the file."""
    where = ".".join(str(part) for part in error.errors()[0]["loc"])
    from_overrides = any(where == key or where.startswith(f"{key}.") for key in overrides)
    return "command line" if from_overrides else str(path)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where: 'line 3, column 9: mapping values are not allowed here'."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def set_dotted(data: dict[str, Any], dotted_key: str, value: Any) -> None:
    """`set_dotted(d, "eval.sample_size", 2)` sets d["eval"]["sample_size"]."""
    *parents, leaf = dotted_key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise FinsentError(f"override '{dotted_key}': '{part}' is not a section")
    node[leaf] = value


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> FinsentConfig:
    """Load `path` (default ./config.yaml, or built-in defaults where it is absent), apply
    dotted-key overrides (a None value sets the key to null, as `--set KEY=null` asks), validate."""
    explicit = path is not None
    path = Path(path) if explicit else DEFAULT_CONFIG_PATH
    raw: dict[str, Any] = {}
    if path.is_file():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise FinsentError(f"{path}: not valid YAML: {yaml_problem(exc)}") from None
        except UnicodeDecodeError as exc:
            raise not_text_error(path, exc) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise FinsentError(f"{path}: the top level must be a mapping of keys")
        raw = loaded or {}
    elif explicit:
        raise FinsentError(f"config file not found: {path}")
    else:
        log.info("no %s here: using built-in defaults", path)
    try:
        raw = FinsentConfig._lift_original_eval_keys(raw)
    except ValueError as exc:
        raise FinsentError(f"{path}: {exc}") from exc
    for key, value in (overrides or {}).items():
        set_dotted(raw, key, value)
    try:
        return FinsentConfig.model_validate(raw)
    except ValidationError as exc:
        raise FinsentError(_describe(exc, _source(exc, path, overrides or {}))) from exc
