"""The one argument parser every stage script starts from: `--config PATH` and `--set KEY=VALUE`."""
from __future__ import annotations

import argparse
from typing import Any

import yaml

from utils.config import FinsentConfig, load_config
from utils.errors import FinsentError


def stage_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", default=None,
                        help="YAML config (default: ./config.yaml if present, else built-in defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key by its dotted name, e.g. --set eval.sample_size=2")
    return parser


def _parse_set(items: list[str]) -> dict[str, Any]:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FinsentError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def config_from_args(args: argparse.Namespace, flag_overrides: dict[str, Any] | None = None) -> FinsentConfig:
    """Config file, then `--set` overrides, then the script's own flags (None = not given)."""
    overrides = _parse_set(args.overrides)
    overrides.update({k: v for k, v in (flag_overrides or {}).items() if v is not None})
    return load_config(args.config, overrides)
