"""Every model × `sample_size` iterations × every snapshot article → one file per (model,
iteration) in the original study's format (`eval/sentiment_files.py` documents and reads it).

What the original lacked, added here: bounded parallel requests per backend, a progress bar
with ETA per model, atomic files, reruns that skip complete files, invalid answers kept with
their raw text (sidecar `<TICKER>_<i>.invalid.jsonl`, which the reader ignores), and every
exception counted and reported instead of silently dropped.

Order: article-major. Each worker takes one article and asks for all its pending iterations
back to back, so the same prompt goes to the same server slot again and again: llama.cpp (and
Ollama, vLLM) then reuse the whole prompt from the KV cache and only decode the answer, where
iteration-major order reused only the instructions. Iterations stay independent samples: each
has its own seed when the model has one (`seed + iteration`), else the server draws one per
request.

Why a journal rather than a window of iterations: with article-major order an iteration file
completes only near the end of the model's run, so every answer is first appended (and
fsynced) to `<TICKER>.journal.jsonl` in the model's folder; a rerun after a crash reuses the
journaled answers and asks only for the missing ones, and the journal is removed once every
iteration file is written. A window of W iterations would have completed files every W
iterations but processed every prompt N/W times more; the journal keeps whole-prompt reuse
and loses at most the answers in flight.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from eval.backends import BackendUnavailable, ModelSpec, SentimentBackend, make_backend
from eval.news import Article, Snapshot, prompt_text
from eval.sentiment_files import SentimentFileError, read_iteration_file
from eval.sentiment_folder import iteration_file_path, journal_path
from eval.settings import EvalConfig
from utils.errors import FinsentError
from utils.io import JsonlAppender, atomic_write_json, atomic_write_text, read_jsonl
from utils.schema import ResponseParseError, parse_sentiment_response

log = logging.getLogger(__name__)


@dataclass
class Answer:
    """One model answer about one article, in the file's format plus what went wrong."""

    article: Article
    record: dict[str, Any]
    raw: str | None = None
    error: str | None = None  # why the text is not a valid answer
    exception: str | None = None  # "Type: message" when the request itself failed

    @property
    def valid(self) -> bool:
        return bool(self.record["valid"])


def iteration_seed(seed: int | None, iteration: int) -> int | None:
    """A distinct, reproducible seed per iteration, so iterations are independent samples."""
    return None if seed is None else seed + iteration


def judge(backend: SentimentBackend, article: Article, max_chars: int, seed: int | None = None) -> Answer:
    """Ask `backend` about `article`; never raises except when the server is gone."""
    started = time.monotonic()
    raw = error = exception = None
    fields: dict[str, Any] = {}
    try:
        raw = backend.complete(backend.spec.messages(prompt_text(article, max_chars), article.published),
                               seed=seed)
        fields = parse_sentiment_response(raw).model_dump()
    except BackendUnavailable:
        raise
    except ResponseParseError as exc:
        error = str(exc)
    except Exception as exc:  # counted and reported per model, never swallowed silently
        exception = f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        error = "request failed"
    record = {**fields, "valid": not error, "url": article.url, "published": article.published,
              "time_taken": round(time.monotonic() - started, 2)}
    return Answer(article, record, raw, error, exception)


def weighted_average_sentiment(records: list[dict[str, Any]]) -> float:
    """The original's figure: sentiment weighted by confidence over valid, non-zero answers."""
    total = weight = 0.0
    for record in records:
        if record["valid"] and record["sentiment"] != 0.0:
            total += record["sentiment"] * record["confidence"]
            weight += record["confidence"]
    return round(total / weight, 2) if weight else 0.0


def write_iteration(path: Path, answers: list[Answer]) -> None:
    """The iteration file (atomic), and beside it the invalid answers' raw text (atomic).
    Its `time_taken` is the sum of its answers' times, what the original's sequential loop
    measured; answers of one iteration are spread over the whole run, so no wall time fits."""
    records = [a.record for a in answers]
    invalid = [{"key": a.article.key, "url": a.article.url, "error": a.error,
                "exception": a.exception, "raw": a.raw} for a in answers if not a.valid]
    sidecar = path.with_name(path.stem + ".invalid.jsonl")
    if invalid:
        atomic_write_text(sidecar, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in invalid))
    else:
        sidecar.unlink(missing_ok=True)
    atomic_write_json(path, {"average_sentiment": weighted_average_sentiment(records),
                             "time_taken": round(sum(r["time_taken"] for r in records), 2),
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
    answers: int = 0  # asked for in this run
    answers_reused: int = 0  # from the journal of an interrupted run
    valid: int = 0
    wall_s: float = 0.0
    exceptions: Counter = field(default_factory=Counter)
    exception_examples: list[str] = field(default_factory=list)
    parse_errors: Counter = field(default_factory=Counter)
    stopped: str | None = None  # why the run of this model stopped early
    # The snapshot's answers in this model's iteration files after the run, whichever run asked
    # them: what the mode lines report, so a resumed or cached run prints an uninterrupted one's.
    answers_in_files: int = 0
    valid_in_files: int = 0

    @property
    def valid_rate(self) -> float | None:
        return self.valid / self.answers if self.answers else None

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.folder, "backend": self.backend, "mode": self.mode, "where": self.where,
                "iterations_written": self.iterations_written,
                "iterations_skipped": self.iterations_skipped, "answers": self.answers,
                "answers_reused": self.answers_reused,
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


def journaled_answers(path: Path, articles: list[Article], iterations: list[int]) -> dict[int, dict[str, Answer]]:
    """Answers an interrupted run journaled for `iterations` × `articles` (others ignored)."""
    by_key = {a.key: a for a in articles}
    found: dict[int, dict[str, Answer]] = {i: {} for i in iterations}
    try:
        # A line without its newline is torn (kill -9) even when it parses: the appender
        # cuts it before its next append, so it is asked again rather than kept.
        entries = read_jsonl(path, complete_lines_only=True)
    except ValueError as exc:
        raise FinsentError(f"{exc} (delete it or rerun with --force)") from exc
    for entry in entries:
        article = by_key.get(entry.get("key"))
        record = entry.get("record") or {}
        if article is None or entry.get("iteration") not in found or record.get("url") != article.url:
            continue
        found[entry["iteration"]][article.key] = Answer(article, record, entry.get("raw"), entry.get("error"),
                                                        entry.get("exception"))
    return found


def work_units(missing: dict[str, list[int]], workers: int) -> list[tuple[str, list[int]]]:
    """Article-major work: (article key, iterations to ask in turn). An article's iterations
    are split only when there are fewer articles than workers, so that every worker has one;
    the longest units go first, so the run does not end on one long unit."""
    busy = [(key, iterations) for key, iterations in missing.items() if iterations]
    if not busy:
        return []
    pieces = -(-workers // len(busy))
    units = []
    for key, iterations in busy:
        size = -(-len(iterations) // pieces)
        units += [(key, iterations[k:k + size]) for k in range(0, len(iterations), size)]
    return sorted(units, key=lambda unit: -len(unit[1]))


def run_model(spec: ModelSpec, backend: SentimentBackend, snapshot: Snapshot, config: EvalConfig,
              force: bool = False, progress: bool = True) -> ModelSummary:
    """All iterations of one model, article-major (see the module's doc): every answer is
    journaled at once, each iteration file is written as soon as its last answer arrives."""
    from tqdm import tqdm

    summary = ModelSummary(spec.folder, spec.backend, spec.mode, backend.where)
    articles = {a.key: a for a in snapshot.articles}
    paths = {i: iteration_file_path(config.sentiment_save_folder, spec.folder, snapshot.ticker, i)
             for i in range(config.sample_size)}
    journal = journal_path(config.sentiment_save_folder, spec.folder, snapshot.ticker)
    if force:
        journal.unlink(missing_ok=True)
    todo = [i for i, path in paths.items() if force or not is_complete(path, set(articles))]
    summary.iterations_skipped = len(paths) - len(todo)
    done = journaled_answers(journal, snapshot.articles, todo)
    summary.answers_reused = sum(len(answers) for answers in done.values())
    lock = threading.Lock()

    def write_if_complete(i: int) -> None:
        if len(done[i]) == len(articles):
            write_iteration(paths[i], [done[i][key] for key in articles])
            summary.iterations_written += 1

    for i in todo:
        write_if_complete(i)
    missing = {key: [i for i in todo if key not in done[i]] for key in articles}
    units = work_units(missing, backend.parallel)
    if not units:
        journal.unlink(missing_ok=True)
        if not todo:
            log.info("%s: all %d iterations already complete (use --force to redo)", spec.folder, len(paths))
        return summary
    if summary.answers_reused:
        log.info("%s: %d answers reused from %s", spec.folder, summary.answers_reused, journal)
    backend.check()
    summary.where = backend.where
    stop = threading.Event()
    start = time.monotonic()
    bar = tqdm(total=sum(len(its) for _, its in units), desc=spec.folder, unit="answer",
               disable=not progress, dynamic_ncols=True)

    def ask(key: str, iterations: list[int]) -> None:
        for i in iterations:
            if stop.is_set():
                return
            answer = judge(backend, articles[key], config.max_article_chars, iteration_seed(spec.seed, i))
            with lock:
                appender.append({"iteration": i, "key": key, "record": answer.record, "raw": answer.raw,
                                 "error": answer.error, "exception": answer.exception})
                summary.count(answer)
                done[i][key] = answer
                write_if_complete(i)
                bar.update(1)
                bar.set_postfix(valid=f"{summary.valid}/{summary.answers}")

    with JsonlAppender(journal) as appender, ThreadPoolExecutor(max_workers=backend.parallel) as pool:
        futures = [pool.submit(ask, key, iterations) for key, iterations in units]
        try:
            for future in as_completed(futures):
                future.result()
        except BackendUnavailable as exc:
            summary.stopped = str(exc)
        finally:
            stop.set()  # on any error: no new requests; those in flight are journaled
            for future in futures:
                future.cancel()
            bar.close()
    summary.wall_s = time.monotonic() - start
    if all(len(done[i]) == len(articles) for i in todo):
        journal.unlink()
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
        count_files(summaries[-1], snapshot, config)
    return summaries


def count_files(summary: ModelSummary, snapshot: Snapshot, config: EvalConfig) -> None:
    """The answers to the snapshot's articles in the model's complete iteration files."""
    keys = {article.key for article in snapshot.articles}
    for i in range(config.sample_size):
        path = iteration_file_path(config.sentiment_save_folder, summary.folder, snapshot.ticker, i)
        if is_complete(path, keys):
            answers = [answer for key, answer in read_iteration_file(path)["sentiments"].items() if key in keys]
            summary.answers_in_files += len(answers)
            summary.valid_in_files += sum(bool(answer["valid"]) for answer in answers)


def mode_rates(summaries: list[ModelSummary]) -> dict[str, dict[str, Any]]:
    """Valid-JSON rate of structured vs free answers in the iteration files, side by side."""
    rates: dict[str, dict[str, Any]] = {}
    for mode in ("structured", "free"):
        answers = sum(s.answers_in_files for s in summaries if s.mode == mode)
        valid = sum(s.valid_in_files for s in summaries if s.mode == mode)
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
