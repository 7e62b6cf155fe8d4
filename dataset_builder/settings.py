"""The `dataset:` section of config.yaml (steps 01–05)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


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
    timeout_s: float = Field(default=60.0, gt=0)
    # json_schema: constrained to SentimentResponse; json_object: any JSON; none: free text.
    response_format: Literal["json_schema", "json_object", "none"] = "json_object"
    # US$ per million tokens, for the cost estimate in the final summary.
    price_input_per_million: float = Field(default=0.0, ge=0)
    price_output_per_million: float = Field(default=0.0, ge=0)


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


class DatasetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tweets_csv: Path = Path("examples/airline_tweets/Tweets.csv")
    phrasebank_dir: Path = Path("examples/financial_phrasebank")
    news_dir: Path = Path("examples/news")
    output_dir: Path = Path("data")
    seed: int = 42
    step_03_results: Path = Path("data/step_03_labels.jsonl")  # the labeller's cache
    step_03_csv: Path = Path("data/step_03_news.csv")
    labeller: LabellerConfig = Field(default_factory=LabellerConfig)
