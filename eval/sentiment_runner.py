"""Every model × `sample_size` iterations × every snapshot article → one file per (model,
iteration) in the original study's format (`eval/sentiment_files.py` documents and reads it).

What the original lacked, added here: bounded parallel requests per backend, a progress bar
with ETA per model, atomic files, reruns that skip complete files, invalid answers kept with
their raw text (sidecar `<TICKER>_<i>.invalid.jsonl`, which the reader ignores), and every
exception counted and reported instead of silently dropped.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
import json
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from eval.backends import BackendUnavailable, ModelSpec, SentimentBackend, make_backend
from eval.news import Article, Snapshot, prompt_text
from eval.sentiment_files import SentimentFileError, iteration_file_path, read_iteration_file
from eval.settings import EvalConfig
from utils.errors import FinsentError
from utils.io import atomic_write_json, atomic_write_text
from utils.schema import ResponseParseError, parse_sentiment_response

log = logging.getLogger(__name__)


@dataclass
class Answer:
    """One model answer about one article, in the file's format plus what went wrong."""

    article: Article
    record: dict[str, Any]
    started: float
    ended: float
    raw: str | None = None
    error: str | None = None  # why the text is not a valid answer
    exception: str | None = None  # "Type: message" when the request itself failed

    @property
    def valid(self) -> bool:
        return bool(self.record["valid"])


def judge(backend: SentimentBackend, article: Article, max_chars: int) -> Answer:
    """Ask `backend` about `article`; never raises except when the server is gone."""
    started = time.monotonic()
    raw = error = exception = None
    fields: dict[str, Any] = {}
    try:
        raw = backend.complete(backend.spec.messages(prompt_text(article, max_chars), article.published))
        fields = parse_sentiment_response(raw).model_dump()
    except BackendUnavailable:
        raise
    except ResponseParseError as exc:
        error = str(exc)
    except Exception as exc:  # counted and reported per model, never swallowed silently
        exception = f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        error = "request failed"
    ended = time.monotonic()
    record = {**fields, "valid": not error, "url": article.url, "published": article.published,
              "time_taken": round(ended - started, 2)}
    return Answer(article, record, started, ended, raw, error, exception)


def weighted_average_sentiment(records: list[dict[str, Any]]) -> float:
    """The original's figure: sentiment weighted by confidence over valid, non-zero answers."""
    total = weight = 0.0
    for record in records:
        if record["valid"] and record["sentiment"] != 0.0:
            total += record["sentiment"] * record["confidence"]
            weight += record["confidence"]
    return round(total / weight, 2) if weight else 0.0


def write_iteration(path: Path, answers: list[Answer]) -> None:
    """The iteration file (atomic), and beside it the invalid answers' raw text (atomic)."""
    records = [a.record for a in answers]
    elapsed = max(a.ended for a in answers) - min(a.started for a in answers)
    invalid = [{"key": a.article.key, "url": a.article.url, "error": a.error,
                "exception": a.exception, "raw": a.raw} for a in answers if not a.valid]
    sidecar = path.with_name(path.stem + ".invalid.jsonl")
    if invalid:
        atomic_write_text(sidecar, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in invalid))
    else:
        sidecar.unlink(missing_ok=True)
    atomic_write_json(path, {"average_sentiment": weighted_average_sentiment(records),
                             "time_taken": round(elapsed, 2),
                             "sentiments": {a.article.key: a.record for a in answers}})


def is_complete(path: Path, keys: set[str]) -> bool:
    """A file already holding an answer (valid or not) for every snapshot article."""
    if not path.is_file():
        return False
    try:
        return keys <= set(read_iteration_file(path)["sentiments"])
    except SentimentFileError as exc:
        log.warning("redoing %s", exc)
        return False


@dataclass
class ModelSummary:
    folder: str
    backend: str
    mode: str
    where: str = ""
    iterations_written: int = 0
    iterations_skipped: int = 0
    answers: int = 0
    valid: int = 0
    wall_s: float = 0.0
    exceptions: Counter = field(default_factory=Counter)
    exception_examples: list[str] = field(default_factory=list)
    parse_errors: Counter = field(default_factory=Counter)
    stopped: str | None = None  # why the run of this model stopped early

    @property
    def valid_rate(self) -> float | None:
        return self.valid / self.answers if self.answers else None

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.folder, "backend": self.backend, "mode": self.mode, "where": self.where,
                "iterations_written": self.iterations_written,
                "iterations_skipped": self.iterations_skipped, "answers": self.answers,
                "valid": self.valid, "valid_json_rate": self.valid_rate,
                "answers_per_s": self.answers / self.wall_s if self.wall_s else None,
                "exceptions": dict(self.exceptions), "exception_examples": self.exception_examples,
                "invalid_reasons": dict(self.parse_errors.most_common(5)), "stopped": self.stopped}

    def count(self, answer: Answer) -> None:
        self.answers += 1
        self.valid += answer.valid
        if answer.exception:
            self.exceptions[answer.exception.split(":")[0]] += 1
            if len(self.exception_examples) < 3:
                self.exception_examples.append(f"{answer.article.key}: {answer.exception}")
        elif answer.error:
            self.parse_errors[answer.error.split(":")[0]] += 1


def run_model(spec: ModelSpec, backend: SentimentBackend, snapshot: Snapshot, config: EvalConfig,
              force: bool = False, progress: bool = True) -> ModelSummary:
    """All iterations of one model; each finished iteration is written at once."""
    from tqdm import tqdm

    summary = ModelSummary(spec.folder, spec.backend, spec.mode, backend.where)
    keys = {a.key for a in snapshot.articles}
    paths = {i: iteration_file_path(config.sentiment_save_folder, spec.folder, snapshot.ticker, i)
             for i in range(config.sample_size)}
    todo = [i for i, path in paths.items() if force or not is_complete(path, keys)]
    summary.iterations_skipped = len(paths) - len(todo)
    if not todo:
        log.info("%s: all %d iterations already complete (use --force to redo)", spec.folder, len(paths))
        return summary
    backend.check()
    summary.where = backend.where
    pending = {i: len(snapshot.articles) for i in todo}
    done: dict[int, list[Answer]] = {i: [] for i in todo}
    start = time.monotonic()
    bar = tqdm(total=len(todo) * len(snapshot.articles), desc=spec.folder, unit="answer",
               disable=not progress, dynamic_ncols=True)
    with ThreadPoolExecutor(max_workers=backend.parallel) as pool:
        futures = {pool.submit(judge, backend, article, config.max_article_chars): i
                   for i in todo for article in snapshot.articles}
        try:
            for future in as_completed(futures):
                i = futures[future]
                answer = future.result()
                summary.count(answer)
                done[i].append(answer)
                pending[i] -= 1
                bar.update(1)
                bar.set_postfix(valid=f"{summary.valid}/{summary.answers}")
                if pending[i] == 0:
                    order = {a.key: n for n, a in enumerate(snapshot.articles)}
                    write_iteration(paths[i], sorted(done.pop(i), key=lambda a: order[a.article.key]))
                    summary.iterations_written += 1
        except BackendUnavailable as exc:
            summary.stopped = str(exc)
            for future in futures:
                future.cancel()
        finally:
            bar.close()
    summary.wall_s = time.monotonic() - start
    return summary


def run_models(specs: list[ModelSpec], snapshot: Snapshot, config: EvalConfig, force: bool = False,
               progress: bool = True,
               backend_factory: Callable[[ModelSpec, EvalConfig], SentimentBackend] = make_backend,
               ) -> list[ModelSummary]:
    """Each model in turn (one server at a time, as the models may not fit together)."""
    summaries = []
    for spec in specs:
        backend = backend_factory(spec, config)
        try:
            summaries.append(run_model(spec, backend, snapshot, config, force, progress))
        finally:
            backend.close()
    return summaries


def mode_rates(summaries: list[ModelSummary]) -> dict[str, dict[str, Any]]:
    """Valid-JSON rate of structured vs free answers, side by side."""
    rates: dict[str, dict[str, Any]] = {}
    for mode in ("structured", "free"):
        answers = sum(s.answers for s in summaries if s.mode == mode)
        valid = sum(s.valid for s in summaries if s.mode == mode)
        rates[mode] = {"answers": answers, "valid": valid,
                       "valid_json_rate": valid / answers if answers else None}
    return rates


def summary_table(summaries: list[ModelSummary]) -> str:
    """A plain-text table of the run: one line per model, then one per mode."""
    def rate(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    lines = [f"{'model':<40} {'mode':<10} {'written':>7} {'skipped':>7} {'answers':>7} "
             f"{'valid JSON':>10} {'answers/s':>9}  exceptions"]
    for s in summaries:
        per_s = f"{s.answers / s.wall_s:.2f}" if s.wall_s else "-"
        errors = ", ".join(f"{k}×{v}" for k, v in s.exceptions.items()) or "none"
        lines.append(f"{s.folder[:40]:<40} {s.mode:<10} {s.iterations_written:>7} {s.iterations_skipped:>7} "
                     f"{s.answers:>7} {rate(s.valid_rate):>10} {per_s:>9}  {errors}")
        if s.stopped:
            lines.append(f"    stopped early: {s.stopped}")
    for mode, figures in mode_rates(summaries).items():
        lines.append(f"{mode} mode: {figures['valid']}/{figures['answers']} valid JSON "
                     f"({rate(figures['valid_json_rate'])})")
    return "\n".join(lines)


def write_summary(summaries: list[ModelSummary], path: str | Path) -> None:
    atomic_write_json(path, {"models": [s.as_dict() for s in summaries], "by_mode": mode_rates(summaries)})


def stopped_error(summaries: list[ModelSummary]) -> FinsentError | None:
    """One error for the models that stopped early (their finished iterations are kept)."""
    stopped = [s for s in summaries if s.stopped]
    if not stopped:
        return None
    return FinsentError(f"{stopped[0].stopped}; {sum(s.iterations_written for s in summaries)} "
                        "iteration file(s) written are kept: rerun to continue")
