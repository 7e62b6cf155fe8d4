"""The sentiments folder: one JSON file per model and iteration, read once into tidy tables.

This module is the contract between the eval stage (which writes the files) and the reports
(which read them). Both sides use it; nothing else should parse these files.

Layout (the original study's, unchanged)::

    <sentiment_save_folder>/<model folder>/<TICKER>_<iteration>.json

* model folder = `eval.sentiment_folder.model_folder_name(model)`: the model's name with ":"
  replaced by "_" (`"llama3:8b-instruct-q4_K_M"` → `"llama3_8b-instruct-q4_K_M"`). A
  `models_to_test` entry may be a string or a mapping with a `name` key (else a `model` key).
* file = `eval.sentiment_folder.iteration_file_path(folder, model, ticker, i)`; iteration
  numbers start at 0.

One file::

    {"average_sentiment": 0.65,            # mean sentiment of the valid answers (rounded)
     "time_taken": 160.99,                 # seconds for the whole iteration (ours: the sum of its answers')
     "sentiments": {
        "<article key>": {                 # first 8 hex digits of md5(url)
            "reasoning": str, "sentiment": float in [-1, 1], "confidence": float in [0, 1],
            "valid": true, "url": str, "published": str, "time_taken": float},
        "<article key>": {                 # an answer that did not parse: no reasoning,
            "valid": false, "url": str, "published": str, "time_taken": float}}}

API
---
`load_sentiments(folder, models=None, strict=False) -> SentimentData`
    Reads every file of every model once. `models`: names as in `models_to_test` (strings or
    mappings); None or empty = every subfolder of `folder`, sorted. A model's folder is its
    folder name exactly, else the one subfolder whose name differs only in case (results
    written on macOS, whose file system ignores case). Models with no folder are left out
    with one warning line listing them (`SentimentData.missing_models`); `strict` makes that
    an error. The result has

    * `answers`: one row per (model, ticker, iteration, article): columns ANSWER_COLUMNS =
      model, ticker, iteration, article_key, sentiment, confidence, valid, time_taken, url,
      published, reasoning. `sentiment`/`confidence`/`reasoning` are NaN/None where
      `valid` is False.
    * `files`: one row per file: FILE_COLUMNS = model, ticker, iteration, path,
      average_sentiment, time_taken, n_answers, n_valid.
    * `models`: the model folder names, in the order asked for.
    * `skipped`: one line per thing left out (corrupt file, empty iteration, stray file,
      malformed answer, model without a valid answer), also logged as warnings with counts.

    Errors (`SentimentFileError`, a one-line `FinsentError`): the folder is missing; no model
    asked for has a folder (or, with `strict`, one has none); no model has any file.
    Logged skips: a file that is not valid JSON or lacks the keys above (named, with the
    reason); a file with no answers (empty iteration); a `.json` file whose name is not
    `<TICKER>_<i>.json`; an answer marked valid without a numeric sentiment/confidence in
    range (kept as invalid). A model whose answers are all invalid is kept (its valid-JSON
    rate is a real 0) and listed in `SentimentData.models_without_valid`, never a silent 0.

`read_iteration_file(path) -> dict`
    One file, validated (the structure above); raises `SentimentFileError` naming the file
    and the reason. The eval stage uses it to decide whether an iteration is already done.

`resolve_pairs(pairs, models, strict=False, skipped=None) -> list[tuple[str, str]]`
    Maps `comparison_pairs` names onto model folder names: ":" → "_", then exact, then
    case-insensitive. Entries naming a model with no folder are left out with one warning
    line listing them (`strict`: an error); a name matching several folders is an error.
"""
from __future__ import annotations

import json
import logging
import math
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pandas as pd

from eval.sentiment_folder import FILE_NAME, model_folder_name
from utils.cli import stage_parser
from utils.errors import FinsentError

log = logging.getLogger(__name__)

ANSWER_COLUMNS = ["model", "ticker", "iteration", "article_key", "sentiment", "confidence",
                  "valid", "time_taken", "url", "published", "reasoning"]
FILE_COLUMNS = ["model", "ticker", "iteration", "path", "average_sentiment", "time_taken",
                "n_answers", "n_valid"]


def report_parser(description: str):
    """The report scripts' parser: `--config`, `--set`, `--sentiments` and `--strict`."""
    parser = stage_parser(description)
    parser.add_argument("--sentiments", help="sentiments folder (eval.sentiment_save_folder)")
    parser.add_argument("--strict", action="store_true",
                        help="a model or comparison pair with no results folder is an error, not a warning")
    return parser


class SentimentFileError(FinsentError):
    """A sentiments file or folder that cannot be used, named in one line."""


@dataclass
class SentimentData:
    answers: pd.DataFrame
    files: pd.DataFrame
    models: list[str]
    skipped: list[str] = field(default_factory=list)
    missing_models: list[str] = field(default_factory=list)

    @property
    def models_without_valid(self) -> list[str]:
        valid_models = set(self.answers.loc[self.answers["valid"], "model"])
        return [m for m in self.models if m not in valid_models]

    def valid(self) -> pd.DataFrame:
        """The valid answers only."""
        return self.answers[self.answers["valid"]]

    def article_titles(self, width: int = 26, headlines: dict[str, str] | None = None) -> dict[str, str]:
        """Article key → a short title: its headline where `headlines` (key → the news snapshot's
        title) has one, written as published ('EU regulators …'), else words read from its URL
        (whose case is lost: 'Eu regulators …'); empty where neither says anything."""
        urls = self.answers.drop_duplicates("article_key").set_index("article_key")["url"]
        headlines = headlines or {}
        return {key: shorten(headlines[key], width) if headlines.get(key)
                else short_title(url, width) if isinstance(url, str) else "" for key, url in urls.items()}


def short_title(url: str, width: int = 26) -> str:
    """A reader's title from a news URL's last path segment: words of its slug, without the
    file suffix and the numeric id news sites append, cut to `width` characters at a word
    ('…/nvidia-ceo-says-tesla-far-ahead-181126677.html' → 'Nvidia ceo says tesla far…')."""
    slug = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    slug = re.sub(r"-\d{5,}$", "", re.sub(r"\.(s?html?|php|aspx?)$", "", slug))
    words = " ".join(re.split(r"[-_+\s]+", slug)).strip(" :,.")
    if not re.search(r"[A-Za-z]{3}", words):  # an id, not words
        return ""
    short = shorten(words, width)
    return short[0].upper() + short[1:]


def shorten(words: str, width: int) -> str:
    """`words` cut to `width` characters at a word, '…' marking the cut."""
    short = textwrap.shorten(words, width, placeholder="…")
    return words[:width - 1] + "…" if short == "…" else short  # one word longer than width


def read_iteration_file(path: str | Path) -> dict[str, Any]:
    """Parse and check one iteration file; `SentimentFileError` names the file and the reason."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError) as exc:
        raise SentimentFileError(f"{path}: cannot read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise SentimentFileError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("sentiments"), dict):
        raise SentimentFileError(f"{path}: no 'sentiments' mapping of article key → answer")
    for key, answer in data["sentiments"].items():
        if not isinstance(answer, dict) or "valid" not in answer:
            raise SentimentFileError(f"{path}: article '{key}': answer has no 'valid' flag")
    return data


def _number(value: Any, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if low <= value <= high and not math.isnan(value) else None


def _float_or_nan(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _model_files(folder: Path, model: str, skipped: list[str]) -> list[tuple[str, int, Path]]:
    found = []
    for path in folder.iterdir():
        if path.suffix != ".json" or not path.is_file():
            continue
        match = FILE_NAME.match(path.name)
        if match is None:
            skipped.append(f"{path}: name is not <TICKER>_<iteration>.json")
            continue
        found.append((match["ticker"], int(match["iteration"]), path))
    if not found:
        raise SentimentFileError(f"model '{model}': no <TICKER>_<i>.json file in {folder}")
    return sorted(found, key=lambda item: (item[0], item[1]))


def _subfolders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _folded_index(names: Iterable[str]) -> dict[str, list[str]]:
    """Case-folded name → the names that fold to it."""
    index: dict[str, list[str]] = {}
    for name in names:
        index.setdefault(name.casefold(), []).append(name)
    return index


def _match_ignoring_case(folder_name: str, by_folded: Mapping[str, list[str]], what: str) -> str | None:
    """The one folder whose name equals `folder_name` ignoring case (None: no such folder);
    several is an error, as no file system could have written them for one model."""
    matches = by_folded.get(folder_name.casefold(), [])
    if len(matches) > 1:
        raise SentimentFileError(f"{what}: '{folder_name}' matches several model folders ignoring case: "
                                 f"{', '.join(matches)}")
    return matches[0] if matches else None


def configured_models(folder: str | Path, models: Sequence[str | Mapping[str, Any]] | None
                      ) -> tuple[list[str], list[str]]:
    """(folders found, folder names missing) of `models`, or every subfolder of `folder`
    (sorted) when none are given. A model's folder is its exact name, else the one folder
    whose name differs only in case (results written on macOS, whose file system ignores
    case, and read here)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SentimentFileError(f"sentiments folder not found: {folder} (run the eval stage first)")
    present = _subfolders(folder)
    if not models:
        if not present:
            raise SentimentFileError(f"sentiments folder {folder} has no model subfolders")
        return present, []
    by_folded = _folded_index(present)
    found, missing = [], []
    for name in dict.fromkeys(model_folder_name(m) for m in models):
        if (folder / name).is_dir():
            found.append(name)
        elif (match := _match_ignoring_case(name, by_folded, f"model '{name}'")) is not None:
            log.info("model '%s': reading folder '%s' (same name ignoring case)", name, match)
            found.append(match)
        else:
            missing.append(name)
    return list(dict.fromkeys(found)), missing


def load_sentiments(folder: str | Path, models: Sequence[str | Mapping[str, Any]] | None = None,
                    strict: bool = False) -> SentimentData:
    """Read every iteration file of every model once (see the module docstring)."""
    folder = Path(folder)
    names, missing = configured_models(folder, models)
    missing_line = ""
    if missing:
        missing_line = (f"no folder in {folder} for {len(missing)} model(s) of models_to_test: "
                        f"{', '.join(missing)}")
        if strict or not names:
            raise SentimentFileError(missing_line + (" (--strict)" if strict else ""))
        log.warning("skipped: %s (--strict makes this an error)", missing_line)
    skipped: list[str] = []
    columns: dict[str, list] = {c: [] for c in ANSWER_COLUMNS}
    file_rows: list[tuple] = []
    corrupt = empty = malformed = 0
    for model in names:
        model_dir = folder / model
        for ticker, iteration, path in _model_files(model_dir, model, skipped):
            try:
                data = read_iteration_file(path)
            except SentimentFileError as exc:
                corrupt += 1
                skipped.append(f"skipped corrupt file {exc}")
                continue
            answers = data["sentiments"]
            if not answers:
                empty += 1
                skipped.append(f"skipped empty iteration {path}: no answers")
                continue
            n_valid = 0
            for key, answer in answers.items():
                valid = answer.get("valid") is True
                sentiment = _number(answer.get("sentiment"), -1.0, 1.0) if valid else None
                confidence = _number(answer.get("confidence"), 0.0, 1.0) if valid else None
                if valid and (sentiment is None or confidence is None):
                    malformed += 1
                    skipped.append(f"{path}: article '{key}': marked valid without a sentiment in "
                                   "[-1, 1] and a confidence in [0, 1]; counted as invalid")
                    valid = False
                n_valid += valid
                columns["model"].append(model)
                columns["ticker"].append(ticker)
                columns["iteration"].append(iteration)
                columns["article_key"].append(str(key))
                columns["sentiment"].append(sentiment if valid else math.nan)
                columns["confidence"].append(confidence if valid else math.nan)
                columns["valid"].append(valid)
                columns["time_taken"].append(_float_or_nan(answer.get("time_taken")))
                columns["url"].append(answer.get("url"))
                columns["published"].append(answer.get("published"))
                columns["reasoning"].append(answer.get("reasoning") if valid else None)
            file_rows.append((model, ticker, iteration, str(path),
                              _float_or_nan(data.get("average_sentiment")),
                              _float_or_nan(data.get("time_taken")), len(answers), n_valid))
    answers_df = pd.DataFrame(columns)
    answers_df["valid"] = answers_df["valid"].astype(bool)
    answers_df["iteration"] = answers_df["iteration"].astype("int64")
    data = SentimentData(answers=answers_df, files=pd.DataFrame(file_rows, columns=FILE_COLUMNS),
                         models=names, skipped=skipped, missing_models=missing)
    if answers_df.empty:
        raise SentimentFileError(f"no usable answer in {folder} for models {', '.join(names)}"
                                 + (f" ({skipped[0]})" if skipped else ""))
    _log_skips(corrupt, empty, malformed, skipped)
    if missing_line:
        skipped.insert(0, f"skipped: {missing_line}")
    without_valid = data.models_without_valid
    for model in without_valid:
        line = f"model '{model}': no valid answer in any file; its statistics are NaN"
        skipped.append(line)
        log.warning(line)
    log.info("read %d files: %d answers (%d valid) of %d models", len(data.files),
             len(answers_df), int(answers_df["valid"].sum()), len(names))
    return data


def _log_skips(corrupt: int, empty: int, malformed: int, skipped: list[str]) -> None:
    for count, what in ((corrupt, "corrupt file(s)"), (empty, "empty iteration(s)"),
                        (malformed, "malformed answer(s) counted as invalid")):
        if count:
            log.warning("skipped %d %s", count, what)
    for line in skipped:
        log.warning("%s", line)


def resolve_pairs(pairs: Iterable[Sequence[str]], models: Sequence[str], strict: bool = False,
                  skipped: list[str] | None = None) -> list[tuple[str, str]]:
    """Map each `comparison_pairs` entry onto model folder names (":" → "_", then exact, then
    case-insensitive). Entries naming a model with no folder are left out with one warning
    line listing them (appended to `skipped`), or, with `strict`, are an error."""
    by_folded = _folded_index(models)
    resolved, unmatched = [], []
    for number, pair in enumerate(pairs, start=1):
        if len(pair) != 2:
            raise FinsentError(f"comparison_pairs entry {number} {list(pair)!r}: needs exactly two model names")
        folders = [_resolve_name(name, number, models, by_folded) for name in pair]
        if None in folders:
            absent = " and ".join(f"'{name}'" for name, f in zip(pair, folders) if f is None)
            unmatched.append(f"{number} ({absent})")
        else:
            resolved.append((folders[0], folders[1]))
    if unmatched:
        line = (f"{len(unmatched)} comparison_pairs entr{'y' if len(unmatched) == 1 else 'ies'} "
                f"name{'s' if len(unmatched) == 1 else ''} a model with no folder among the {len(models)} read: "
                f"{', '.join(unmatched)}")
        if strict:
            raise FinsentError(f"{line} (--strict)")
        log.warning("skipped: %s (--strict makes this an error)", line)
        if skipped is not None:
            skipped.append(f"skipped: {line}")
    return resolved


def _resolve_name(name: str, number: int, models: Sequence[str],
                  by_folded: Mapping[str, list[str]]) -> str | None:
    folder = model_folder_name(name)
    if folder in models:
        return folder
    match = _match_ignoring_case(folder, by_folded, f"comparison_pairs entry {number}")
    if match is not None and match != folder:
        log.info("comparison_pairs entry %d: '%s' matched folder '%s' ignoring case", number, name, match)
    return match
