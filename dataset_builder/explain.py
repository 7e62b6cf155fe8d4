"""Step 03b (step_03b_explain_labels.py): a reasoning written by an LLM for rows that already
carry a human label (the outputs of steps 01 and 02), in place of their templated one.

The model is told the label (sentiment and confidence) and asked why the text has it, in words
grounded in the text; its answer is validated like any other, and only its reasoning is kept:
the sentiment and confidence stay the annotators'. Rows go through the labeller (synchronous
or batch), so they are cached and resumable like articles, in `<step output>_explained.jsonl`;
the explained rows are written to `<step output>_explained.csv`, which step 04 prefers, row by
row, to the templated ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from dataset_builder.labelled_csv import LABELLED_COLUMNS
from dataset_builder.news_articles import article_id
from utils.errors import FinsentError
from utils.io import read_csv_rows
from utils.labels import sentiment_label
from utils.prompts import system_prompt
from utils.schema import SentimentResponse

EXPLAINED_SUFFIX = "_explained"
EXPLAIN_INSTRUCTIONS = (
    "Financial analysts labelled the text below. Its sentiment is {sentiment:+.2f} on a scale from "
    "-1 (negative) through 0 (neutral) to 1 (positive), so it reads as {word}, and their confidence "
    "is {confidence:.2f}. In one or two sentences, explain why the text has this sentiment, "
    "grounded in its own words: what it reports and why that is {word} for the company it "
    "concerns. Reply with only a JSON object with the keys reasoning, sentiment and confidence, "
    "giving sentiment {sentiment:.2f} and confidence {confidence:.2f}.")


@dataclass(frozen=True)
class LabelledRow:
    """A row of step 01/02's `Article,JSON` CSV: its text and the annotators' answer."""

    id: str  # of text and label: a relabelled row is a new row to explain
    text: str
    answer: SentimentResponse
    published: str | None = None


def explained_csv(step_output: Path) -> Path:
    """Where the explained rows of a step's `Article,JSON` CSV are written (and step 04 looks)."""
    step_output = Path(step_output)
    return step_output.with_name(f"{step_output.stem}{EXPLAINED_SUFFIX}{step_output.suffix}")


def explain_results(step_output: Path) -> Path:
    """The labeller's cache of the explained rows."""
    step_output = Path(step_output)
    return step_output.with_name(f"{step_output.stem}{EXPLAINED_SUFFIX}.jsonl")


def read_labelled_rows(path: Path) -> list[LabelledRow]:
    """Every distinct row of a step 01/02 CSV; a row whose JSON is not a valid answer is an
    error naming its line."""
    rows: dict[str, LabelledRow] = {}
    for line, row in read_csv_rows(path, LABELLED_COLUMNS, "labelled CSV"):
        try:
            answer = SentimentResponse.model_validate_json(row["JSON"])
        except ValidationError as exc:
            raise FinsentError(f"{path}: line {line}: the JSON is not a valid answer "
                               f"({exc.errors()[0]['msg']})") from None
        key = article_id(f"{row['Article']}\x1f{answer.sentiment}\x1f{answer.confidence}")
        rows.setdefault(key, LabelledRow(key, row["Article"], answer))
    return list(rows.values())


def explain_messages(row: LabelledRow) -> list[dict[str, str]]:
    """The request for a reasoning about `row`, its label given."""
    answer = row.answer
    instructions = EXPLAIN_INSTRUCTIONS.format(sentiment=answer.sentiment, confidence=answer.confidence,
                                               word=sentiment_label(answer.sentiment, 0.0))
    return [{"role": "system", "content": system_prompt()},
            {"role": "user", "content": f"{instructions}\n\nText: {row.text}\nAnswer:"}]


def keep_human_label(row: LabelledRow, response: SentimentResponse) -> dict:
    """The model's reasoning with the annotators' sentiment and confidence."""
    return row.answer.model_copy(update={"reasoning": response.reasoning}).model_dump()


def explain_task():
    """The labeller's Task for rows to explain (imported here: the SDKs take seconds to load,
    and step 04 needs only the paths above)."""
    from dataset_builder.labeller import Task

    return Task(explain_messages, keep_human_label)
