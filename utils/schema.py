"""The one answer format of finsent and the parser that pulls it out of model text."""
from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class SentimentResponse(BaseModel):
    """`{"reasoning": str, "sentiment": float in [-1, 1], "confidence": float in [0, 1]}`."""

    model_config = ConfigDict(extra="forbid", strict=False)

    reasoning: str = Field(min_length=1)
    sentiment: float = Field(ge=-1.0, le=1.0)
    confidence: float = Field(ge=0.0, le=1.0)

    @field_validator("reasoning")
    @classmethod
    def _reasoning_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("reasoning is blank")
        return value

    @field_validator("sentiment", "confidence", mode="before")
    @classmethod
    def _numbers_not_bool(cls, value: Any) -> Any:
        # pydantic would read true/false as 1.0/0.0: a model that answers a bool is wrong.
        if isinstance(value, bool):
            raise ValueError("a number is required, got a boolean")
        return value


def sentiment_json_schema(max_reasoning_chars: int = 400) -> dict[str, Any]:
    """JSON schema for constrained decoding (Ollama `format`, OpenAI `response_format`).

    The reasoning's length is capped so a small model cannot ramble inside the string
    until it runs out of tokens and leaves the object unclosed.
    """
    return {
        "type": "object",
        "properties": {
            "reasoning": {"type": "string", "minLength": 1, "maxLength": max_reasoning_chars},
            "sentiment": {"type": "number", "minimum": -1, "maximum": 1},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["reasoning", "sentiment", "confidence"],
        "additionalProperties": False,
    }


def json_schema_response_format(max_reasoning_chars: int = 400, strict: bool = False) -> dict[str, Any]:
    """An OpenAI-compatible `response_format` that constrains the answer to sentiment_json_schema."""
    spec: dict[str, Any] = {"name": "sentiment", "schema": sentiment_json_schema(max_reasoning_chars)}
    if strict:
        spec["strict"] = True
    return {"type": "json_schema", "json_schema": spec}


class ResponseParseError(ValueError):
    """Why a model's text holds no valid SentimentResponse (one line, for logs and records)."""


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def _candidate_objects(text: str) -> list[str]:
    """Fenced blocks first, then every balanced {...} span in the text, outermost first."""
    candidates = [m.group(1).strip() for m in _FENCE.finditer(text)]
    decoder = json.JSONDecoder()
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        try:
            _, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        candidates.append(text[start:end])
    return candidates


def _schema_reason(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "object"
        parts.append(f"{where}: {item['msg']}")
    return "schema violation: " + "; ".join(parts)


def parse_sentiment_response(text: str | None, model: type[SentimentResponse] = SentimentResponse) -> SentimentResponse:
    """Return the validated answer in `text` (bare JSON, ```json fences, prose around it);
    `model`: SentimentResponse or a subclass with more fields (a synthesized text's `text`).

    Raises ResponseParseError saying precisely why not: empty answer, no JSON object,
    truncated JSON, or which field breaks the schema.
    """
    if text is None or not text.strip():
        raise ResponseParseError("empty answer")
    candidates = _candidate_objects(text)
    if not candidates:
        if "{" in text:
            raise ResponseParseError("truncated or malformed JSON: no complete object in the answer")
        raise ResponseParseError("no JSON object in the answer")
    schema_errors: list[str] = []
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except json.JSONDecodeError as exc:
            schema_errors.append(f"malformed JSON: {exc.msg} at char {exc.pos}")
            continue
        if not isinstance(data, dict):
            schema_errors.append(f"JSON is a {type(data).__name__}, not an object")
            continue
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            schema_errors.append(_schema_reason(exc))
    raise ResponseParseError(schema_errors[0])
