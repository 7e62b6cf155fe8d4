"""A stage script's config: the file, then `--set` overrides, then the script's own flags."""
from __future__ import annotations

import argparse
from typing import Any

from finsent.config import FinsentConfig, load_config
from utils.cli import parse_set


def config_from_args(args: argparse.Namespace, flag_overrides: dict[str, Any] | None = None) -> FinsentConfig:
    """Config file, then `--set` overrides, then the script's own flags (None = not given)."""
    overrides = parse_set(args.overrides)
    overrides.update({k: v for k, v in (flag_overrides or {}).items() if v is not None})
    return load_config(args.config, overrides)
