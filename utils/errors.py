"""User-facing errors: one line that names the file, row or key; exit code 2."""
from __future__ import annotations

import logging
import sys
from functools import wraps
from typing import Callable


class FinsentError(Exception):
    """A problem with the user's input or environment, reported in one line."""


def cli_entry(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a script's main(): FinsentError (and Ctrl-C) become one line on stderr, exit ≠ 0."""

    @wraps(main)
    def wrapper(*args, **kwargs) -> int:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            return main(*args, **kwargs) or 0
        except FinsentError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted: what was written so far is kept; rerun to continue", file=sys.stderr)
            return 130

    return wrapper
