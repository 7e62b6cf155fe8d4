"""Synthetic texts from a provider: the configured LLMs write new short financial texts over a
grid (style × topic × sentiment × strength, `dataset.synthesis`), each with the answer a reader
would give it.

Each text to write is a `SynthesisCell`, which the step 03 labeller treats as an article: the
same providers, limits, retries, re-asks and the same append-only results file (a rerun, or a
run after kill -9, writes only the cells not recorded yet; `--retry-failed`; the Batch API).
Each answer is validated: a JSON object with `text` and the answer schema, the text no longer
than `max_chars`, its sentiment in the class the cell asked for. The texts kept are written
as a corpus CSV (`dataset_builder.corpus`'s columns, plus the provider, model and prompt that
made each row), exact and near duplicates dropped (within it and against `--against` sets):
step 04 takes it as its source "synthetic" (`dataset.corpus_csv`, or `--input synthetic=PATH`).
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from dataset_builder.corpus import CORPUS_COLUMNS, near_duplicates
from dataset_builder.labelled_csv import write_csv
from dataset_builder.label_store import ResultStore
from dataset_builder.news_articles import article_id
from dataset_builder.settings import ProviderConfig, SynthesisConfig
from utils.labels import sentiment_label
from utils.schema import ResponseParseError, SentimentResponse, parse_sentiment_response, sentiment_json_schema

SYNTHESIS_COLUMNS = (*CORPUS_COLUMNS, "provider", "model", "prompt")
SYSTEM = ("You write realistic, varied short financial texts for a data set that teaches a model to read "
          "market sentiment, and you judge each text as a careful equity analyst would.")
INSTRUCTIONS = (
    "Write one new {style} about {topic} at a listed company you invent (a name, figures and details of your "
    "own), at most {max_chars} characters, whose news is {tone} for the company's shares. It is text {number} "
    "of this kind: make it unlike a typical one. Then judge it. Reply with only a JSON object with the keys "
    "text (the text itself), reasoning (one or two sentences, in the text's own words, on why it moves the "
    "stock), sentiment (from -1, very negative, to 1, very positive; {scale}) and confidence (0 to 1).")
TONES = {("positive", "mild"): "mildly positive", ("positive", "strong"): "clearly and strongly positive",
         ("negative", "mild"): "mildly negative", ("negative", "strong"): "clearly and strongly negative",
         ("neutral", "mild"): "neutral (neither good nor bad)", ("neutral", "strong"): "plainly neutral (no effect)"}


class SynthesizedText(SentimentResponse):
    """A provider's answer: the text it wrote and the answer about it."""

    text: str = Field(min_length=1)


@dataclass(frozen=True)
class SynthesisCell:
    """One text to write: a point of the grid and its number there. `text` is the prompt (what
    the results file records as the row's `article`)."""

    style: str
    topic: str
    sentiment: str
    strength: str
    number: int
    max_chars: int
    threshold: float
    published: None = None

    @property
    def id(self) -> str:
        return article_id(f"synthesis\x1f{self.style}\x1f{self.topic}\x1f{self.sentiment}\x1f{self.strength}"
                          f"\x1f{self.number}")

    @property
    def text(self) -> str:
        t = self.threshold
        scale = {"positive": f"above {t:g} here", "negative": f"below -{t:g} here",
                 "neutral": f"between -{t:g} and {t:g} here"}[self.sentiment]
        return INSTRUCTIONS.format(style=self.style, topic=self.topic, max_chars=self.max_chars, number=self.number,
                                   tone=TONES[(self.sentiment, self.strength)], scale=scale)


def grid_cells(config: SynthesisConfig, count: int, threshold: float) -> list[SynthesisCell]:
    """`count` cells: the grid's points in turn (style fastest), numbered 1, 2, ... per point, so
    that a larger --count keeps every cell of a smaller one (and its recorded answer)."""
    points = list(itertools.product(config.sentiments, config.strengths, config.topics, config.styles))
    return [SynthesisCell(style, topic, sentiment, strength, i // len(points) + 1, config.max_chars, threshold)
            for i, (sentiment, strength, topic, style) in zip(range(count), itertools.cycle(points))]


def synthesis_messages(cell: SynthesisCell) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": cell.text}]


def parse_synthesized(content: str | None) -> SynthesizedText:
    return parse_sentiment_response(content, SynthesizedText)


def checked_answer(cell: SynthesisCell, answer: SynthesizedText) -> dict:
    """The record's response: the text and its answer, with the cell it was asked for. A text too
    long, or a sentiment outside the class asked for, is ResponseParseError: re-asked with why."""
    text = answer.text.strip()
    if len(text) > cell.max_chars:
        raise ResponseParseError(f"the text has {len(text)} characters, more than {cell.max_chars}")
    got = sentiment_label(answer.sentiment, cell.threshold)
    if got != cell.sentiment:
        raise ResponseParseError(f"sentiment {answer.sentiment:g} is {got}; the text was to be {cell.sentiment} "
                                 f"(|sentiment| {'above' if cell.sentiment != 'neutral' else 'at most'} "
                                 f"{cell.threshold:g})")
    return {**answer.model_dump(), "text": text, "style": cell.style, "topic": cell.topic,
            "asked": f"{cell.strength} {cell.sentiment}"}


def synthesized_schema(max_chars: int) -> dict:
    """The answer's JSON schema with the text first (for constrained decoding)."""
    schema = sentiment_json_schema()
    return {**schema, "properties": {"text": {"type": "string", "minLength": 1, "maxLength": max_chars},
                                     **schema["properties"]}, "required": ["text", *schema["required"]]}


def synthesis_task(max_chars: int):
    """The labeller's Task for synthesis cells (imported here: the SDKs take seconds to load): a
    provider with `response_format: json_schema` is constrained to the schema with the text."""
    from dataset_builder.labeller import Task
    from dataset_builder.providers import response_format

    def requested_format(provider: ProviderConfig) -> dict | None:
        if provider.response_format == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "synthesized_text",
                                                           "schema": synthesized_schema(max_chars)}}
        return response_format(provider)

    return Task(synthesis_messages, checked_answer, parse_synthesized, requested_format)


def corpus_rows(store: ResultStore, cells: list[SynthesisCell],
                against: Iterable[str] = ()) -> tuple[list[tuple[str, ...]], list[str]]:
    """The corpus CSV's rows of the cells written ok, in cell order, less exact and near
    duplicates (of an earlier row or of `against`); and a line for each dropped one."""
    records = [store.records[cell.id] for cell in cells
               if cell.id in store.records and store.records[cell.id]["status"] == "ok"]
    repeats = dict(near_duplicates([r["response"]["text"] for r in records], against))
    rows, dropped = [], []
    for number, record in enumerate(records):
        answer = record["response"]
        if number in repeats:
            dropped.append(f"{answer['text'][:60]!r} repeats {repeats[number][:60]!r}")
            continue
        rows.append((answer["text"], f"{answer['sentiment']:g}", f"{answer['confidence']:g}", answer["reasoning"],
                     answer["style"], answer["topic"], record["provider"], record["model"], record["article"]))
    return rows, dropped


def write_corpus(path: Path, rows: list[tuple[str, ...]]) -> None:
    write_csv(path, SYNTHESIS_COLUMNS, rows)


def cost_estimate(cells: list[SynthesisCell], providers: list[ProviderConfig], max_tokens: int) -> list[str]:
    """What writing `cells` would cost at most on each provider alone (prompt ≈ 4 characters a
    token, every answer `max_tokens` long)."""
    prompt = sum(len(SYSTEM) + len(cell.text) for cell in cells) / 4
    answer = max_tokens * len(cells)
    return [f"  {p.name}: at most ${(prompt * p.price_input_per_million + answer * p.price_output_per_million) / 1e6:.4f}"
            f" if it wrote them all ({prompt:,.0f} prompt + {answer:,} completion tokens)" for p in providers]
