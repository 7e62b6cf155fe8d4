"""eval/ask.py end to end: answers streamed from the real Gemma 3 270M GGUF on the embedded
engine (without torch importable), from a tiny random HF model through transformers, and from
`python -m eval.ask serve` on a fixed port, which step 03's openai_compatible provider and
eval's openai backend then use with real requests."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from dataset_builder.settings import LabellerConfig
from eval.backends import make_backend, parse_model_entry
from eval.settings import EvalConfig
from eval.answer_stream import HFStream, OpenAICompatibleStream, ask, check_port_free
from tests.conftest import REPO_ROOT, run_script, script_env
from tests.finetune_fixtures import llama_cpp_vendor, tiny_llama  # noqa: F401
from tests.labeller_support import write_config
from utils.engine import default_gguf_path, free_port
from utils.labels import to_class
from utils.prompts import analysis_messages
from utils.schema import SentimentResponse, sentiment_json_schema

TEXT = "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn."
# The script run as `python eval/ask.py` with torch and transformers unimportable: an import
# finder first on sys.meta_path refuses them (None in sys.modules would trip scipy's torch probe).
WITHOUT_TORCH = """
import runpy, sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            raise ImportError(f"{name} is blocked: the fine-tune extras must not be needed here")
sys.meta_path.insert(0, NoTorch())
sys.argv = ["eval/ask.py", *sys.argv[1:]]
runpy.run_path("eval/ask.py", run_name="__main__")
"""


def ask_without_torch(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *args], cwd=REPO_ROOT, env=script_env(),
                          input=stdin, capture_output=True, text=True, timeout=600)


def test_the_stream_comes_in_pieces_that_make_the_answer(embedded_engine):
    stream = OpenAICompatibleStream(embedded_engine.base_url, "gemma", {
        "max_tokens": 80, "temperature": 0, "json_schema": sentiment_json_schema()})
    seen: list[str] = []
    answer = ask(stream, analysis_messages(TEXT, few_shot=False), TEXT, 0.15, seen.append)
    stream.close()
    assert len(seen) > 5 and answer.raw == "".join(seen)  # token by token, nothing lost
    assert answer.response is not None, answer.error
    assert SentimentResponse.model_validate_json(answer.raw) == answer.response
    assert answer.label == to_class(answer.response.sentiment, 0.15)


@pytest.mark.slow
def test_ask_a_gguf_without_torch_streams_then_gives_the_label():
    result = ask_without_torch("--gguf", str(default_gguf_path()), "--chat-template", "gemma-3", "--structured",
                               "--max-tokens", "80", "--threads", "2", "--set", "dataset.label_threshold=0.1", TEXT)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == f"> {TEXT}"
    answer = json.loads("\n".join(lines[1:-1]))  # the streamed answer, as it came
    SentimentResponse.model_validate(answer)
    label = to_class(answer["sentiment"], 0.1)
    assert lines[-1] == (f"→ {label} (sentiment {answer['sentiment']:+.2f} at threshold 0.10, "
                        f"confidence {answer['confidence']:.2f}): {answer['reasoning']}")


def test_help_and_bad_input_need_no_torch(tmp_path):
    result = ask_without_torch("--help")
    assert result.returncode == 0 and "--gguf" in result.stdout and "serve" in result.stdout
    result = ask_without_torch("--gguf", str(tmp_path / "missing.gguf"), "x")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: GGUF model not found: {tmp_path / 'missing.gguf'}"
    result = ask_without_torch("--gguf", str(tmp_path / "missing.gguf"), stdin="\n  \n")
    assert (result.returncode, result.stderr.strip().splitlines()[-1]) == (2, "error: no text on stdin (one text per line)")


def test_an_hf_folder_streams_through_transformers(tiny_llama):  # noqa: F811
    """A random model writes no JSON: the answer streams, then is reported invalid, never a crash."""
    stream = HFStream(tiny_llama, max_tokens=12, temperature=0)
    seen: list[str] = []
    answer = ask(stream, analysis_messages(TEXT, few_shot=False), TEXT, 0.15, seen.append)
    assert len(seen) > 1 and answer.raw == "".join(seen) and answer.raw.strip()
    assert answer.response is None and answer.label == "invalid" and answer.error
    assert answer.record()["valid"] is False


@pytest.fixture(scope="module")
def served():
    """`python -m eval.ask serve` on a fixed port, stopped by SIGTERM at the end."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "eval.ask", "serve", "--port", str(port), "--name",
                               "finsent-test", "--parallel", "2", "--threads", "2"],
                              cwd=REPO_ROOT, env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    ready = server.stdout.readline()  # the engine is healthy when this line comes
    assert ready.startswith("serving gemma-3-270m-q4_k_m.gguf as model 'finsent-test' at "
                            f"http://127.0.0.1:{port}/v1"), server.stderr.read()[-2000:] if server.poll() else ready
    yield port
    server.terminate()
    assert server.wait(timeout=60) == 0
    check_port_free(port)  # nothing listens there any more


def test_serve_refuses_a_busy_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        started = time.monotonic()
        result = run_script("eval/ask.py", "serve", "--port", str(port))
    assert result.returncode == 2 and time.monotonic() - started < 60
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: --port {port}: 127.0.0.1:{port} is in use (stop what serves there, or pick another port)")


def test_eval_openai_backend_and_ask_use_the_served_model(served):
    url = f"http://127.0.0.1:{served}/v1"
    config = EvalConfig(request_retries=0)
    spec = parse_model_entry({"backend": "openai", "model": "finsent-test", "base_urls": [url],
                              "prompt": "trained", "max_tokens": 8}, 1, config)
    backend = make_backend(spec, config)
    backend.check()  # the served name is in /v1/models
    assert backend.complete(spec.messages(TEXT)).strip()  # a real answer, 8 tokens of it
    backend.close()
    entry = f"{{backend: openai, model: finsent-test, base_urls: ['{url}']}}"
    result = ask_without_torch("--model", entry, "--prompt", "trained", "--structured", "--max-tokens", "80",
                               "--json", stdin=f"{TEXT}\n\nShares fell 30% after the profit warning.\n")
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in records] == [TEXT, "Shares fell 30% after the profit warning."]
    assert any(record["valid"] for record in records), records
    for record in records:  # an answer cut at --max-tokens is reported invalid, never a crash
        if record["valid"]:
            assert record["label"] == to_class(record["sentiment"], 0.15)
            assert SentimentResponse.model_validate_json(record["raw"]).sentiment == record["sentiment"]
        else:
            assert record["label"] == "invalid" and record["error"]


@pytest.mark.slow
def test_step_03_labels_through_the_served_model(served, tmp_path):
    config = LabellerConfig(
        providers=[{"name": "served", "kind": "openai_compatible", "base_url": f"http://127.0.0.1:{served}/v1",
                    "models": ["finsent-test"], "response_format": "json_schema", "timeout_s": 240}],
        max_in_flight=2, max_tokens=120, max_retries=0, max_reasks=0, few_shot=False)
    results = tmp_path / "labels.jsonl"
    done = run_script("dataset_builder/step_03_label_articles.py", "--no-progress",
                      "--config", write_config(tmp_path / "config.yaml", config),
                      "--input", REPO_ROOT / "examples" / "news", "--limit", "1",
                      "--results", results, "--output", tmp_path / "news.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    [record] = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    assert record["model"] == "finsent-test" and record["requests"] == 1
    assert record["status"] == "ok", record
    SentimentResponse.model_validate(record["response"])
