"""The embedded llama.cpp engine is real: it loads Gemma 3 270M and answers over HTTP."""
import httpx
import pytest

from utils.engine import EmbeddedEngine, EngineSettings
from utils.errors import FinsentError
from utils.prompts import analysis_messages
from utils.schema import parse_sentiment_response, sentiment_json_schema


def test_schema_constrained_answer_is_a_valid_response(embedded_engine):
    body = {
        "messages": analysis_messages("Nokia's quarterly profit doubled, beating forecasts."),
        "max_tokens": 256,
        "temperature": 0.2,
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "sentiment", "schema": sentiment_json_schema()}},
    }
    reply = httpx.post(f"{embedded_engine.base_url}/chat/completions", json=body, timeout=120)
    assert reply.status_code == 200
    choice = reply.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    answer = parse_sentiment_response(choice["message"]["content"])
    assert -1.0 <= answer.sentiment <= 1.0


def test_missing_gguf_is_a_one_line_error(tmp_path):
    with pytest.raises(FinsentError, match="GGUF model not found"):
        EmbeddedEngine(EngineSettings(gguf_path=tmp_path / "absent.gguf")).start()
