"""The one argument parser every stage script starts from: `--config PATH` and `--set KEY=VALUE`
(read into a config by `finsent.cli.config_from_args`)."""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, NoReturn

import yaml

from utils.errors import FinsentError


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse whose bad flag or flag value is one `error:` line and exit 2, like any bad input
    (argparse's own prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


class OwnDefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends a flag's own default once: not '(default: None)' to a flag whose help already says
    where its value comes from (a config key), nor a second default where the help names one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, [], argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def moved_flag(parser: argparse.ArgumentParser, flag: str, command: str, value: str | None = None) -> None:
    """A flag a script no longer has, hidden from --help: given, it is one `error:` line naming the
    command that does its work now, exit 2. With `value` (what to show where none was given) the
    flag takes a value, put in place of `{value}` in `command`."""

    class Moved(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None) -> NoReturn:
            now = command.format(value=values or value)
            parser.exit(2, f"error: {option_string} is no longer a flag of {parser.prog}: run {now}\n")

    parser.add_argument(flag, action=Moved, nargs=0 if value is None else "?", help=argparse.SUPPRESS)


def stage_parser(description: str) -> argparse.ArgumentParser:
    parser = OneLineErrorParser(description=description, formatter_class=OwnDefaultsHelpFormatter)
    parser.add_argument("--config", default=None,
                        help="YAML config (default: ./config.yaml if present, else built-in defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key by its dotted name, e.g. --set eval.sample_size=2")
    return parser


def help_before_imports(parse_args: Callable[[list[str]], Any]) -> None:
    """At the top of a script whose imports take seconds or need the fine-tune extras: --help is
    answered (and the script exits) from its parser alone, before those imports."""
    if {"-h", "--help"} & set(sys.argv[1:]):
        parse_args(sys.argv[1:])


def yaml_value(text: str, flag: str) -> Any:
    """A flag's value read as YAML (`[1, 2]`, `{a: b}`, `0.5`, a bare word); malformed YAML is
    one error line naming the flag."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FinsentError(f"{flag}: not a YAML value ({reason})") from None


def parse_set(items: list[str]) -> dict[str, Any]:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FinsentError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = yaml_value(value, f"--set {item}")
    return overrides
