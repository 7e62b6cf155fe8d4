"""Accuracy on labelled data: what the original study never measured.

Inputs (`load_labelled`):
* step 05's ShareGPT JSONL (`{"conversations": [system, human, gpt], "source", "label"}`), or
  its folder (test.jsonl, with validation.jsonl beside it for the threshold);
* Financial PhraseBank: its folder (`Sentences_<agreement>.txt`, or `*_<agreement>.txt`) or one of its files
  (ISO-8859-1, `sentence@label`);
* any CSV or JSONL with a text and a label column (`label_map` turns the user's labels into
  positive/neutral/negative).

A model's sentiment s becomes a class with a threshold t: positive if s > t, negative if
s < -t, else neutral. t is chosen on a validation split (macro-F1) and reported; t = 0.15 is
reported as well. An invalid answer counts as wrong in accuracy and F1 (its predicted class
is "invalid"), so a model cannot look better by failing to answer.

Asked with `top_logprobs`, each valid answer also gets the sentiment read from the model's
token probabilities (`eval.expected_sentiment`), scored the same way in an `expected_sentiment`
block beside the generated number's.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import logging
import random
import textwrap
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from eval.backends import BackendUnavailable, ModelSpec, SentimentBackend
from eval.expected_sentiment import expected_sentiment
from utils.errors import FinsentError
from utils.grounding import invented_claims, is_grounded, template_share
from utils.io import JsonlAppender, atomic_path, atomic_write_json, not_text_error, read_json, read_jsonl
from utils.labelled_runs import read_prediction_records  # noqa: F401 (eval's reader, benchmarks' too)
from utils.labels import DEFAULT_LABEL_THRESHOLD, LABELS, sentiment_label, to_class
from utils.phrasebank_files import level_file
from utils.schema import ResponseParseError, parse_sentiment_response
from utils.sharegpt_format import is_sharegpt, read_split, split_file

log = logging.getLogger(__name__)

LABEL_VALUE = {"negative": -1.0, "neutral": 0.0, "positive": 1.0}
THRESHOLD_GRID = [round(0.05 * i, 2) for i in range(0, 19)]  # 0.00 … 0.90


@dataclass(frozen=True)
class LabelledRow:
    row: int  # 1-based line or record number in the input file
    text: str
    label: str
    source: str = ""

    @property
    def text_sha1(self) -> str:
        """Keys a cached answer to the text it answered, not only to the row number."""
        return hashlib.sha1(self.text.encode("utf-8")).hexdigest()


# --- reading -------------------------------------------------------------------------------

def parse_label_map(spec: str | None) -> dict[str, str]:
    """`"bearish=negative,bullish=positive"` → {"bearish": "negative", "bullish": "positive"}."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (spec or "").split(","))):
        key, sep, value = item.partition("=")
        value = value.strip().lower()
        if not sep or not key.strip() or value not in LABELS:
            raise FinsentError(f"--label-map item {item!r}: expected FROM=TO with TO one of {', '.join(LABELS)}")
        mapping[key.strip().lower()] = value
    return mapping


def _label(value: Any, label_map: dict[str, str], where: str) -> str:
    text = str(value).strip()
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    key = text.lower()
    label = label_map.get(key, key)
    if label not in LABELS:
        hint = "" if label_map else " (use --label-map, e.g. 0=negative,1=neutral,2=positive)"
        raise FinsentError(f"{where}: label {text!r} is not positive/neutral/negative{hint}")
    return label


def read_phrasebank(path: Path) -> list[LabelledRow]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="iso-8859-1").splitlines(), start=1):
        if not line.strip():
            continue
        text, sep, label = line.rpartition("@")
        if not sep:
            raise FinsentError(f"{path}: line {number}: no '@label' at the end")
        rows.append(LabelledRow(number, text.strip(), _label(label, {}, f"{path}: line {number}"),
                                "financial_phrasebank"))
    return rows


def read_sharegpt(path: Path) -> list[LabelledRow]:
    rows = []
    for record in read_split(path):
        where = f"{path}: line {record.line}"
        text = record.first("user")
        if text is None:
            raise FinsentError(f"{where}: no human turn in 'conversations'")
        if record.label is None:
            raise FinsentError(f"{where}: no 'label' key")
        rows.append(LabelledRow(record.line, text, _label(record.label, {}, where), record.source))
    return rows


def read_table(path: Path, text_column: str, label_column: str, label_map: dict[str, str]) -> list[LabelledRow]:
    if path.suffix.lower() == ".jsonl":
        try:
            records = read_jsonl(path)
        except ValueError as exc:
            raise FinsentError(str(exc)) from exc
        first_row = 1
    else:
        try:
            with open(path, newline="", encoding="utf-8-sig") as handle:
                records = list(csv.DictReader(handle))
        except UnicodeDecodeError as exc:
            raise not_text_error(path, exc) from None
        first_row = 2  # the header is line 1
    if not records:
        raise FinsentError(f"{path}: no rows")
    for column in (text_column, label_column):
        if column not in records[0]:
            raise FinsentError(f"{path}: no column '{column}' (columns: {', '.join(map(str, records[0]))})")
    rows = []
    for number, record in enumerate(records, start=first_row):
        where = f"{path}: row {number}"
        text = record.get(text_column)
        if not isinstance(text, str) or not text.strip():
            raise FinsentError(f"{where}: empty '{text_column}'")
        rows.append(LabelledRow(number, text.strip(), _label(record.get(label_column), label_map, where),
                                str(record.get("source", ""))))
    return rows


@dataclass
class LabelledInput:
    test: list[LabelledRow]
    validation: list[LabelledRow]
    description: str
    validation_description: str


def resolve_input(path: str | Path, fpb_agreement: str = "50Agree") -> tuple[Path, Path | None]:
    """The file to evaluate, and the validation file that comes with it (step 05's folder)."""
    path = Path(path)
    if not path.exists():
        raise FinsentError(f"input not found: {path}")
    if path.is_dir():
        test, validation = split_file(path, "test"), split_file(path, "validation")
        if test.is_file():
            return test, validation if validation.is_file() else None
        fpb = level_file(path, fpb_agreement)
        if fpb.is_file():
            return fpb, None
        raise FinsentError(f"{path}: neither step 05's test.jsonl nor Financial PhraseBank's {fpb.name} is in it")
    sibling = split_file(path.parent, "validation")
    if path == split_file(path.parent, "test") and sibling.is_file():
        return path, sibling
    return path, None


def read_rows(path: Path, text_column: str = "text", label_column: str = "label",
              label_map: dict[str, str] | None = None, source: str | None = None) -> list[LabelledRow]:
    if path.suffix.lower() == ".txt":
        rows = read_phrasebank(path)
    elif path.suffix.lower() == ".jsonl" and is_sharegpt(path):
        rows = read_sharegpt(path)
    elif path.suffix.lower() in (".csv", ".jsonl"):
        rows = read_table(path, text_column, label_column, label_map or {})
    else:
        raise FinsentError(f"{path}: unsupported input (step 05 JSONL, a Financial PhraseBank folder "
                           "or .txt, or a CSV/JSONL with --text-column/--label-column)")
    if source:
        found = sorted({r.source for r in rows})
        rows = [r for r in rows if r.source == source]
        if not rows:
            raise FinsentError(f"{path}: no row with source '{source}' (sources: {', '.join(found) or 'none'})")
    if not rows:
        raise FinsentError(f"{path}: no labelled rows")
    return rows


def sample(rows: list[LabelledRow], limit: int | None, seed: int) -> list[LabelledRow]:
    """At most `limit` rows, a seeded random sample kept in file order."""
    if not limit or limit >= len(rows):
        return rows
    chosen = set(random.Random(seed).sample(range(len(rows)), limit))
    return [row for i, row in enumerate(rows) if i in chosen]


def load_labelled(path: str | Path, *, text_column: str = "text", label_column: str = "label",
                  label_map: str | None = None, source: str | None = None, fpb_agreement: str = "50Agree",
                  validation: str | Path | None = None, validation_fraction: float = 0.2,
                  limit: int | None = None, validation_limit: int | None = None,
                  seed: int = 42) -> LabelledInput:
    """Test rows and validation rows. Validation: the file given, else step 05's
    validation.jsonl, else a seeded `validation_fraction` held out of the input."""
    test_path, validation_path = resolve_input(path, fpb_agreement)
    mapping = parse_label_map(label_map)
    rows = read_rows(test_path, text_column, label_column, mapping, source)
    if validation is not None:
        validation_path = Path(validation)
        if not validation_path.is_file():
            raise FinsentError(f"validation file not found: {validation_path}")
    if validation_path is not None:
        held_out = read_rows(validation_path, text_column, label_column, mapping, source)
        val_description = str(validation_path)
    elif validation_fraction > 0:
        order = list(range(len(rows)))
        random.Random(seed).shuffle(order)
        cut = set(order[: max(1, int(len(rows) * validation_fraction))])
        held_out = [r for i, r in enumerate(rows) if i in cut]
        rows = [r for i, r in enumerate(rows) if i not in cut]
        val_description = f"{validation_fraction:.0%} of {test_path} held out (seed {seed})"
    else:
        held_out, val_description = [], "none"
    held_out = sample(held_out, validation_limit if validation_limit is not None else limit, seed)
    rows = sample(rows, limit, seed)
    return LabelledInput(rows, held_out, str(test_path) + (f" (source {source})" if source else ""),
                         val_description)


# --- running -------------------------------------------------------------------------------

@dataclass
class Prediction:
    split: str
    row: LabelledRow
    valid: bool
    sentiment: float | None = None
    confidence: float | None = None
    reasoning: str | None = None
    error: str | None = None
    exception: str | None = None
    raw: str | None = None
    seconds: float = 0.0
    # Asked with logprobs: whether the backend gave them (None: not asked), and for a valid
    # answer the sentiment's expected value and the probability of the number as written.
    logprobs: bool | None = None
    expected_sentiment: float | None = None
    sentiment_certainty: float | None = None
    from_cache: bool = False  # answered by an earlier run (not part of the record)

    def record(self, model: str) -> dict[str, Any]:
        record = {"model": model, "split": self.split, "row": self.row.row, "text_sha1": self.row.text_sha1,
                  "valid": self.valid,
                  "sentiment": self.sentiment, "confidence": self.confidence, "reasoning": self.reasoning,
                  "error": self.error, "exception": self.exception, "raw": self.raw, "seconds": self.seconds}
        if self.logprobs is not None:
            record.update(logprobs=self.logprobs, expected_sentiment=self.expected_sentiment,
                          sentiment_certainty=self.sentiment_certainty)
        return record


def predict(backend: SentimentBackend, split: str, row: LabelledRow, top_logprobs: int | None = None) -> Prediction:
    started = time.monotonic()
    raw, tokens = None, None
    asked = {} if top_logprobs is None else {"logprobs": False}
    try:
        messages = backend.spec.messages(row.text)
        if top_logprobs is None:
            raw = backend.complete(messages)
        else:
            raw, tokens = backend.complete_with_logprobs(messages, top_logprobs)
            asked["logprobs"] = tokens is not None
        answer = parse_sentiment_response(raw)
        expected = expected_sentiment(tokens)
        if expected is not None:
            asked.update(expected_sentiment=expected.value, sentiment_certainty=expected.certainty)
        return Prediction(split, row, True, answer.sentiment, answer.confidence, answer.reasoning,
                          raw=raw, seconds=time.monotonic() - started, **asked)
    except BackendUnavailable:
        raise
    except ResponseParseError as exc:
        return Prediction(split, row, False, error=str(exc), raw=raw, seconds=time.monotonic() - started, **asked)
    except Exception as exc:  # counted in the metrics, never lost
        return Prediction(split, row, False, error="request failed", raw=raw,
                          exception=f"{exc.__class__.__name__}: {exc}", seconds=time.monotonic() - started,
                          **asked)


def prediction_cache_key(spec: ModelSpec) -> str:
    """What makes two runs' answers interchangeable: the model and how it is asked. Engine slots
    and CPU threads only change the speed, so a rerun with other --parallel or --threads reuses
    the answers (the GPU benchmark scores the base once on 2 cores and reuses it on 16)."""
    return spec.model_dump_json(exclude={"parallel", "threads"})


def run_predictions(backend: SentimentBackend, data: LabelledInput, cache_path: Path, model_key: str,
                    parallel: int, progress: bool = True, top_logprobs: int | None = None) -> list[Prediction]:
    """Predictions for validation and test rows. Each is appended to `cache_path` as it
    arrives, so an interrupted run continues where it stopped (same model key only). An answer
    is reused only for the text it answered: a row whose text changed since (an edited input
    file, another file at the same --output) is asked again. With `top_logprobs`, the
    answers are asked with their token logprobs, and a cached answer asked without is asked again."""
    from tqdm import tqdm

    try:  # a line without its newline (kill -9) is torn even when it parses: it is asked again
        records = read_jsonl(cache_path, complete_lines_only=True)
    except ValueError as exc:
        raise FinsentError(f"{exc} (delete it to ask every row again)") from exc
    cached: dict[tuple[str, int, str], dict] = {}
    for record in records:
        if record.get("model") == model_key:
            cached[(record["split"], record["row"], record.get("text_sha1", ""))] = record
    jobs = [(split, row) for split, rows in (("validation", data.validation), ("test", data.test)) for row in rows]
    results: dict[tuple[str, int], Prediction] = {}
    todo = []
    for split, row in jobs:
        record = cached.get((split, row.row, row.text_sha1))
        if record is None or (top_logprobs is not None and "logprobs" not in record):
            todo.append((split, row))
            continue
        asked = {} if top_logprobs is None else {key: record[key] for key in (
            "logprobs", "expected_sentiment", "sentiment_certainty")}
        results[(split, row.row)] = Prediction(split, row, record["valid"], record["sentiment"],
                                               record["confidence"], record["reasoning"], record["error"],
                                               record["exception"], record["raw"], record["seconds"], **asked,
                                               from_cache=True)
    if todo:
        backend.check()
        with JsonlAppender(cache_path) as cache, ThreadPoolExecutor(max_workers=parallel) as pool, \
                tqdm(total=len(todo), desc=backend.spec.folder, unit="row", disable=not progress) as bar:
            futures = [pool.submit(predict, backend, split, row, top_logprobs) for split, row in todo]
            try:
                for future in futures:
                    prediction = future.result()
                    cache.append(prediction.record(model_key))
                    results[(prediction.split, prediction.row.row)] = prediction
                    bar.update(1)
            except BackendUnavailable:
                for future in futures:
                    future.cancel()
                raise
    return [results[(split, row.row)] for split, row in jobs]


# --- scoring -------------------------------------------------------------------------------

def classification_metrics(predictions: list[Prediction], threshold: float) -> dict[str, Any]:
    """Accuracy, macro/weighted F1 over all rows (invalid = wrong) and over valid rows only,
    per-class F1 and the confusion matrix (rows: true label; columns: predicted, + invalid)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    truth = [p.row.label for p in predictions]
    guess = [to_class(p.sentiment if p.valid else None, threshold) for p in predictions]
    valid_idx = [i for i, p in enumerate(predictions) if p.valid]
    labels = list(LABELS)

    def scores(y_true: list[str], y_pred: list[str]) -> dict[str, float | None]:
        if not y_true:
            return {"accuracy": None, "macro_f1": None, "weighted_f1": None}
        kwargs = {"labels": labels, "zero_division": 0}
        return {"accuracy": float(accuracy_score(y_true, y_pred)),
                "macro_f1": float(f1_score(y_true, y_pred, average="macro", **kwargs)),
                "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", **kwargs))}

    matrix = confusion_matrix(truth, guess, labels=labels + ["invalid"])[: len(labels)] if truth else []
    per_class = f1_score(truth, guess, labels=labels, average=None, zero_division=0) if truth else []
    return {"threshold": threshold, **scores(truth, guess),
            "valid_only": scores([truth[i] for i in valid_idx], [guess[i] for i in valid_idx]),
            "f1_per_class": dict(zip(labels, map(float, per_class))),
            "confusion_matrix": {"rows_true": labels, "columns_predicted": labels + ["invalid"],
                                 "counts": [list(map(int, r)) for r in matrix]}}


def choose_threshold(validation: list[Prediction]) -> tuple[float, dict[str, float]]:
    """The t of THRESHOLD_GRID with the best macro-F1 on the validation predictions (ties:
    the one nearest 0.15); DEFAULT_LABEL_THRESHOLD when there is no valid validation answer."""
    if not any(p.valid for p in validation):
        return DEFAULT_LABEL_THRESHOLD, {}
    curve = {t: classification_metrics(validation, t)["macro_f1"] for t in THRESHOLD_GRID}
    best = max(curve, key=lambda t: (curve[t], -abs(t - DEFAULT_LABEL_THRESHOLD)))
    return best, {f"{t:.2f}": round(v, 4) for t, v in curve.items()}


def regression_metrics(predictions: list[Prediction]) -> dict[str, float | None]:
    """MAE and Spearman's rho of the sentiment against the label as -1/0/+1 (valid answers)."""
    from scipy.stats import spearmanr

    pairs = [(p.sentiment, LABEL_VALUE[p.row.label]) for p in predictions if p.valid]
    if len(pairs) < 2:
        return {"mae": None, "spearman": None, "spearman_p": None}
    guess, truth = zip(*pairs)
    mae = sum(abs(g - t) for g, t in pairs) / len(pairs)
    if len(set(guess)) < 2 or len(set(truth)) < 2:  # one constant side: no rank correlation (scipy would warn)
        return {"mae": mae, "spearman": None, "spearman_p": None}
    rho, p_value = spearmanr(guess, truth)
    nan = rho != rho
    return {"mae": mae, "spearman": None if nan else float(rho), "spearman_p": None if nan else float(p_value)}


def reasoning_metrics(predictions: list[Prediction]) -> dict[str, float | None]:
    """Over the valid answers: the share whose reasoning states a fact the text does not hold
    (annotators, agreement, a percentage: utils.grounding.invented_claims), the share
    that shares at least one content word with the text, and the template share: the largest
    share that are one sentence once quoted spans are blanked (a label prefix, not an
    explanation, when high), with that template."""
    answered = [p for p in predictions if p.valid and p.reasoning is not None]
    if not answered:
        return {"reasoning_invented_share": None, "reasoning_grounded_share": None,
                "reasoning_template_share": None, "reasoning_top_template": None}
    invented = sum(bool(invented_claims(p.reasoning, p.row.text)) for p in answered)
    grounded = sum(is_grounded(p.reasoning, p.row.text) for p in answered)
    share, template = template_share([p.reasoning for p in answered])
    return {"reasoning_invented_share": round(invented / len(answered), 4),
            "reasoning_grounded_share": round(grounded / len(answered), 4),
            "reasoning_template_share": share, "reasoning_top_template": template}


def sentiment_values(predictions: list[Prediction]) -> dict[str, int]:
    """How often each sentiment value was answered (valid answers), smallest first: a model that
    answers only -1, 0 and 1 leaves the threshold nothing to choose."""
    counts = Counter(round(p.sentiment, 2) for p in predictions if p.valid)
    return {f"{value:g}": counts[value] for value in sorted(counts)}


def expected_sentiment_metrics(validation: list[Prediction], test: list[Prediction],
                               generated_curve: dict[str, float]) -> dict[str, Any]:
    """The scores of the sentiment read from the probabilities, as the generated number's
    (threshold chosen on validation, and 0.15; MAE, Spearman), and whether it wins on
    validation (its best macro-F1 above the generated number's). A valid answer without one
    (its number not found among the tokens) keeps its generated number; counted."""
    if not any(p.logprobs for p in validation + test):
        return {"available": False, "reason": "the backend gave no token logprobs"}

    def read(predictions: list[Prediction]) -> list[Prediction]:
        return [dataclasses.replace(p, sentiment=p.expected_sentiment) if p.valid and p.expected_sentiment is not None
                else p for p in predictions]

    threshold, curve = choose_threshold(read(validation))
    certainties = [p.sentiment_certainty for p in test if p.valid and p.sentiment_certainty is not None]
    best_expected, best_generated = max(curve.values(), default=None), max(generated_curve.values(), default=None)
    return {"available": True, "rows": len(certainties),
            "valid_rows_without_value": sum(p.valid for p in test) - len(certainties),
            "mean_certainty": round(sum(certainties) / len(certainties), 4) if certainties else None,
            "threshold_chosen": threshold, "macro_f1_by_threshold": curve,
            "at_chosen_threshold": classification_metrics(read(test), threshold),
            "at_0.15": classification_metrics(read(test), DEFAULT_LABEL_THRESHOLD),
            **regression_metrics(read(test)),
            "validation_macro_f1": {"generated": best_generated, "expected": best_expected},
            "wins_on_validation": None if best_expected is None or best_generated is None
            else best_expected > best_generated}


def evaluate(predictions: list[Prediction], spec: ModelSpec, data: LabelledInput, seconds: float) -> dict[str, Any]:
    validation = [p for p in predictions if p.split == "validation"]
    test = [p for p in predictions if p.split == "test"]
    threshold, curve = choose_threshold(validation)
    valid = sum(p.valid for p in test)
    exceptions = Counter(p.exception.split(":")[0] for p in test + validation if p.exception)
    expected = ({"expected_sentiment": expected_sentiment_metrics(validation, test, curve)}
                if any(p.logprobs is not None for p in predictions) else {})
    return {
        "model": spec.folder, "backend": spec.backend, "gguf": spec.gguf, "prompt": spec.prompt,
        "structured": spec.structured, "input": data.description, "rows": len(test),
        "label_counts": dict(Counter(p.row.label for p in test)),
        "valid_json_rate": valid / len(test) if test else None,
        "threshold_chosen": threshold,
        "threshold_chosen_on": {"validation": data.validation_description, "rows": len(validation),
                                "valid_json_rate": (sum(p.valid for p in validation) / len(validation))
                                if validation else None, "macro_f1_by_threshold": curve},
        "at_chosen_threshold": classification_metrics(test, threshold),
        "at_0.15": classification_metrics(test, DEFAULT_LABEL_THRESHOLD),
        **regression_metrics(test),
        **reasoning_metrics(test),
        "sentiment_distinct_values": len(sentiment_values(test)),
        "sentiment_values": sentiment_values(test),
        "exceptions": dict(exceptions),
        "invalid_reasons": dict(Counter(p.error.split(":")[0] for p in test if p.error).most_common(5)),
        "seconds": round(seconds, 2),
        "rows_per_s": len(predictions) / seconds if seconds else None,
        **expected,
    }


def time_of_the_asking(metrics: dict[str, Any], predictions: list[Prediction], seconds: float,
                       previous_metrics: Path) -> None:
    """`seconds` and `rows_per_s` of the answers this run asked: a rerun answered wholly from the
    cache keeps the figures of the run that asked them (its metrics.json), not the cache's reading time."""
    asked = sum(not p.from_cache for p in predictions)
    if asked == 0 and previous_metrics.is_file():
        previous = read_json(previous_metrics)
        metrics["seconds"], metrics["rows_per_s"] = previous.get("seconds"), previous.get("rows_per_s")
    else:
        metrics["seconds"], metrics["rows_per_s"] = round(seconds, 2), asked / seconds if seconds else None


# --- writing -------------------------------------------------------------------------------

PREDICTION_COLUMNS = ["split", "row", "source", "label", "valid", "sentiment", "confidence",
                      "predicted_label", "predicted_label_t015", "error", "exception", "text",
                      "reasoning", "raw"]


def prediction_table(predictions: Iterable[Prediction], threshold: float):
    import pandas as pd

    predictions = list(predictions)
    # the expected sentiment's columns after the generated one's, when it was asked for
    expected = ["expected_sentiment", "sentiment_certainty"] if any(p.logprobs is not None for p in predictions) else []
    columns = PREDICTION_COLUMNS[:6] + expected + PREDICTION_COLUMNS[6:]
    return pd.DataFrame([{
        "split": p.split, "row": p.row.row, "source": p.row.source, "label": p.row.label,
        "valid": p.valid, "sentiment": p.sentiment, "confidence": p.confidence,
        "expected_sentiment": p.expected_sentiment, "sentiment_certainty": p.sentiment_certainty,
        "predicted_label": to_class(p.sentiment if p.valid else None, threshold),
        "predicted_label_t015": to_class(p.sentiment if p.valid else None, DEFAULT_LABEL_THRESHOLD),
        "error": p.error, "exception": p.exception, "text": p.row.text, "reasoning": p.reasoning,
        "raw": p.raw} for p in predictions], columns=columns)


def _metric_rows(metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    rows = [(k, metrics[k]) for k in ("model", "backend", "gguf", "prompt", "structured", "input", "rows",
                                      "valid_json_rate", "threshold_chosen", "mae", "spearman",
                                      "reasoning_invented_share", "reasoning_grounded_share",
                                      "reasoning_template_share", "sentiment_distinct_values", "seconds")]
    for block in ("at_chosen_threshold", "at_0.15"):
        for key in ("accuracy", "macro_f1", "weighted_f1"):
            rows.append((f"{block}.{key}", metrics[block][key]))
    expected = metrics.get("expected_sentiment", {})
    if expected.get("available"):
        rows += [(f"expected_sentiment.{k}", expected[k]) for k in ("threshold_chosen", "mae", "spearman",
                                                                   "wins_on_validation")]
        rows += [(f"expected_sentiment.{block}.weighted_f1", expected[block]["weighted_f1"])
                 for block in ("at_chosen_threshold", "at_0.15")]
    return rows


def write_outputs(output: Path, predictions: list[Prediction], metrics: dict[str, Any]) -> dict[str, Path]:
    """predictions.csv, metrics.json, metrics.xlsx and confusion_matrix.png in `output`."""
    import pandas as pd

    from eval.excel_style import excel_safe

    paths = {name: output / name for name in ("predictions.csv", "metrics.json", "metrics.xlsx",
                                              "confusion_matrix.png")}
    table = prediction_table(predictions, metrics["threshold_chosen"])
    with atomic_path(paths["predictions.csv"]) as tmp:
        table.to_csv(tmp, index=False)
    atomic_write_json(paths["metrics.json"], metrics, indent=2)
    with atomic_path(paths["metrics.xlsx"]) as tmp:
        with pd.ExcelWriter(tmp, engine="openpyxl") as writer:
            pd.DataFrame(_metric_rows(metrics), columns=["metric", "value"]).to_excel(
                writer, sheet_name="Metrics", index=False)
            for block, sheet in (("at_chosen_threshold", "Confusion (chosen t)"), ("at_0.15", "Confusion (t=0.15)")):
                cm = metrics[block]["confusion_matrix"]
                pd.DataFrame(cm["counts"], index=cm["rows_true"], columns=cm["columns_predicted"]).to_excel(
                    writer, sheet_name=sheet)
            excel_safe(table).to_excel(writer, sheet_name="Predictions", index=False)
    plot_confusion(metrics, paths["confusion_matrix.png"])
    return paths


def plot_confusion(metrics: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = confusion_figure(metrics)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def confusion_figure(metrics: dict[str, Any]):
    """The confusion matrix at the chosen threshold (and at 0.15 beside it when that differs),
    as a pyplot figure the caller closes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    # one panel when the threshold chosen on validation is the fixed 0.15; else both, named
    chosen = metrics["threshold_chosen"]
    panels = {"at_chosen_threshold": f"chosen on validation: t = {chosen:.2f}"}
    if abs(chosen - DEFAULT_LABEL_THRESHOLD) > 1e-9:
        panels["at_0.15"] = f"fixed reference: t = {DEFAULT_LABEL_THRESHOLD:.2f}"
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (block, name) in zip(axes[0], panels.items()):
        cm = metrics[block]["confusion_matrix"]
        sns.heatmap(cm["counts"], annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax,
                    xticklabels=cm["columns_predicted"], yticklabels=cm["rows_true"])
        f1 = metrics[block]["weighted_f1"]
        ax.set_title(f"{name}, weighted F1 = {'-' if f1 is None else f'{f1:.3f}'}")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.tick_params(axis="y", rotation=0)  # upright class names, clear of the axis label
    fig.suptitle(textwrap.fill(f"{metrics['model']} on {Path(metrics['input'].split(' (')[0]).name} "
                               f"({metrics['rows']} rows)", 50 * len(panels)))
    fig.tight_layout()
    return fig
