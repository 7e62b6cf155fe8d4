"""The `dataset:` section of config.yaml (steps 01–05)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from utils.labels import DEFAULT_LABEL_THRESHOLD


class SplitFractions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    train: float = Field(default=0.8, ge=0, le=1)
    validation: float = Field(default=0.1, ge=0, le=1)
    test: float = Field(default=0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> "SplitFractions":
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must be 1, got {total:g}")
        return self
class ModelChoice(BaseModel):
    """One model of a provider; `weight` counts only with `strategy: weighted`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data):
        return {"name": data} if isinstance(data, str) else data


class ProviderConfig(BaseModel):
    """An LLM provider step 03 labels through: its client, models, limits and prices."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    # openai: openai.AsyncOpenAI; groq: groq.AsyncGroq; openai_compatible: openai.AsyncOpenAI
    # at `base_url` (llama.cpp, vLLM, Ollama's /v1).
    kind: Literal["openai", "groq", "openai_compatible"] = "openai_compatible"
    base_url: str | None = None  # None: the official endpoint of `kind`
    # Name of the environment variable (or .env entry) holding the key; None: no key needed.
    api_key_env: str | None = None
    models: list[ModelChoice] = Field(min_length=1)
    requests_per_minute: float | None = Field(default=None, gt=0)  # None: no client-side limit
    tokens_per_minute: float | None = Field(default=None, gt=0)
    # None: 60 s for a hosted API, 600 s for an openai_compatible server (often a local CPU one,
    # where a busy machine takes minutes per answer and 60 s would fail the answers it is giving).
    timeout_s: float | None = Field(default=None, gt=0)
    # json_schema: constrained to SentimentResponse; json_object: any JSON; none: free text.
    response_format: Literal["json_schema", "json_object", "none"] = "json_object"
    # US$ per million tokens, for the cost estimate in the final summary.
    price_input_per_million: float = Field(default=0.0, ge=0)
    price_output_per_million: float = Field(default=0.0, ge=0)
    # Send this provider's articles through its Batch API (OpenAI, Groq; step 03 --batch: every
    # provider's): half the price, answers within the 24 h window. `batch_discount` is the
    # fraction of the prices above that batch tokens cost.
    batch: bool = False
    batch_discount: float = Field(default=0.5, ge=0, le=1)

    @property
    def request_timeout_s(self) -> float:
        return self.timeout_s or (600.0 if self.kind == "openai_compatible" else 60.0)


def _default_providers() -> list[ProviderConfig]:
    return [ProviderConfig(name="groq", kind="groq", api_key_env="GROQ_API_KEY",
                           models=[ModelChoice(name="llama-3.3-70b-versatile")],
                           requests_per_minute=30, tokens_per_minute=6000,
                           price_input_per_million=0.59, price_output_per_million=0.79)]


class LabellerConfig(BaseModel):
    """`dataset.labeller`: how step 03 asks LLMs to label news articles."""

    model_config = ConfigDict(extra="forbid")

    providers: list[ProviderConfig] = Field(default_factory=_default_providers, min_length=1)
    strategy: Literal["round_robin", "weighted"] = "round_robin"
    max_in_flight: int = Field(default=16, ge=1)  # requests awaiting an answer at once
    max_reasks: int = Field(default=2, ge=0)  # re-asks after an invalid answer, then failed
    max_retries: int = Field(default=6, ge=0)  # per request, on 429/5xx/timeouts/connection errors
    backoff_initial_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=60.0, gt=0)
    retry_after_max_s: float = Field(default=120.0, gt=0)  # cap on a server's Retry-After
    temperature: float = Field(default=0.0, ge=0)
    max_tokens: int = Field(default=400, ge=16)
    few_shot: bool = True
    # A provider whose requests fail this many times in a row with connection errors, timeouts
    # or 5xx is dropped (the run stops when none is left).
    max_consecutive_failures: int = Field(default=20, ge=1)
    # Batch API limits per batch (OpenAI: 50,000 requests, 200 MB; Groq: 50,000, 100 MB):
    # more is split over several batches.
    batch_max_requests: int = Field(default=50_000, ge=1)
    batch_max_bytes: int = Field(default=100 * 2**20, ge=1024)
    # Polling a batch: the wait starts at the first, doubles up to the second.
    batch_poll_initial_s: float = Field(default=5.0, gt=0)
    batch_poll_max_s: float = Field(default=60.0, gt=0)


class SynthesisConfig(BaseModel):
    """dataset_builder/synthesize_texts.py: the grid of new texts the providers write (each cell
    style × topic × sentiment × strength, cycled until --count) and where they go."""

    model_config = ConfigDict(extra="forbid")

    styles: list[str] = Field(default_factory=lambda: [
        "news headline", "news brief", "analyst note", "social media post", "earnings call remark"], min_length=1)
    topics: list[str] = Field(default_factory=lambda: [
        "quarterly earnings", "guidance", "a merger or acquisition", "dividends or buybacks", "layoffs or restructuring",
        "a lawsuit or regulator", "a product or contract", "a management change", "debt or financing"], min_length=1)
    sentiments: list[Literal["positive", "neutral", "negative"]] = Field(
        default_factory=lambda: ["positive", "neutral", "negative"], min_length=1)
    strengths: list[Literal["mild", "strong"]] = Field(default_factory=lambda: ["mild", "strong"], min_length=1)
    max_chars: int = Field(default=280, ge=40)  # a text longer than this is re-asked
    results: Path = Path("data/step_03_synthetic.jsonl")  # the cache, as step 03's
    output_csv: Path = Path("data/step_03_synthetic.csv")  # corpus columns: step 04's source "synthetic"


class DatasetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # inputs
    tweets_csv: Path = Path("examples/airline_tweets/tweets_example.csv")
    phrasebank_dir: Path = Path("examples/financial_phrasebank")
    phrasebank_encoding: str = "iso-8859-1"
    news_dir: Path = Path("examples/news")
    seed: int = 42

    # step 01: keep the first tweet of each repeated text only (14,427 of 14,640)
    tweets_dedupe: bool = False
    # step 02: the original's concatenation of the four nested files (14,780 rows, leaky)
    phrasebank_original_concat: bool = False
    # steps 01 and 02: sentiment = label polarity × annotator agreement, rounded to 0.1, instead
    # of -1/0/1 (dataset_builder.labelled_csv.annotated_sentiment)
    graded_sentiment: bool = False

    # outputs of each step (step 03's is written by the labeller)
    step_01_csv: Path = Path("data/step_01_tweets.csv")
    step_02_csv: Path = Path("data/step_02_phrasebank.csv")
    step_03_csv: Path = Path("data/step_03_news.csv")
    step_04_csv: Path = Path("data/step_04_joined.csv")
    step_05_dir: Path = Path("data/sharegpt")

    # step 05
    split_fractions: SplitFractions = Field(default_factory=SplitFractions)
    # |sentiment| above this is labelled positive/negative, otherwise neutral
    label_threshold: float = Field(default=DEFAULT_LABEL_THRESHOLD, ge=0, lt=1)
    # step 05: pseudo-articles of `passage_sentences` (min, max) rows of `passage_source`, drawn
    # within each split (dataset_builder.passages); `passages` is the train split's count, 0: none
    passages: int = Field(default=0, ge=0)
    passage_source: str = "financial_phrasebank"
    passage_sentences: tuple[int, int] = (3, 6)
    # the synthetic corpus (examples/corpus/finsent_corpus.csv) as step 04's source `synthetic`;
    # None: not joined (the demo's small run)
    corpus_csv: Path | None = None
    # step 05: the largest share of the train split a source may take (e.g. {tweets: 0.25}); a
    # source over it is cut to it, a seeded draw that keeps its labels' proportions
    train_share_max: dict[str, float] = Field(default_factory=dict)
    hub_private: bool = True
    step_03_results: Path = Path("data/step_03_labels.jsonl")  # the labeller's cache
    labeller: LabellerConfig = Field(default_factory=LabellerConfig)
    synthesis: SynthesisConfig = Field(default_factory=SynthesisConfig)

    @field_validator("train_share_max")
    @classmethod
    def _shares(cls, shares: dict[str, float]) -> dict[str, float]:
        bad = [f"{source}: {share}" for source, share in shares.items() if not 0 < share < 1]
        if bad:
            raise ValueError(f"each share must be above 0 and below 1 ({', '.join(bad)})")
        if sum(shares.values()) >= 1:
            raise ValueError("the shares add up to 1 or more: leave room for the other sources")
        return shares

    @field_validator("passage_sentences")
    @classmethod
    def _passage_sizes(cls, sizes: tuple[int, int]) -> tuple[int, int]:
        if not 2 <= sizes[0] <= sizes[1]:
            raise ValueError("a passage takes [min, max] sentences with 2 <= min <= max")
        return sizes
