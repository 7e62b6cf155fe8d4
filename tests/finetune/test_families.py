"""The seed's families end to end on CPU, as a user runs them: a tiny random LLaMA-3, Mistral v0.3,
Phi-3 and Gemma 3 with their real vocabularies (finetune/random_models.py) train 2 steps
(--backend hf, --family and --base-model on the command line), export f16 and q4_k_m with
--config alone, load in the embedded engine, answer a trained prompt, tokenize alike and get
their family's Modelfile."""
from __future__ import annotations

import json
import re

import httpx
import pytest
import yaml

from tests.conftest import run_script
from tests.finetune_fixtures import llama_cpp_vendor, load_family_tokenizer, sharegpt_splits  # noqa: F401
from utils.chat_templates import FAMILIES, family_record
from utils.errors import FinsentError

FAMILY_NAMES = sorted(FAMILIES)


@pytest.fixture(scope="module", params=FAMILY_NAMES)
def exported(request, tmp_path_factory, llama_cpp_vendor, sharegpt_splits) -> dict:  # noqa: F811
    """One family trained (2 steps) and exported with the config the run was not told about."""
    from finetune.random_models import save_random_model

    family = request.param
    root = tmp_path_factory.mktemp(family)
    base = save_random_model(family, root / f"tiny-{family}", llama_cpp_vendor, tiny=True,
                             tokenizer=load_family_tokenizer(family, llama_cpp_vendor))
    config = root / "config.yaml"
    # The config keeps the default family (gemma-3) and base: export must follow the run instead.
    config.write_text(yaml.safe_dump({"finetune": {
        "output_dir": str(root / "run"), "train_file": str(sharegpt_splits["train"]), "validation_file": None,
        "quants": ["f16", "q4_k_m"], "max_seq_length": 512, "batch_size": 4, "gradient_accumulation_steps": 1,
        "logging_steps": 1, "save_steps": 0, "learning_rate": 1e-3}}), encoding="utf-8")
    trained = run_script("finetune/train.py", "--config", config, "--backend", "hf", "--family", family,
                         "--base-model", base, "--max-steps", "2")
    assert trained.returncode == 0, trained.stderr[-3000:]
    export = run_script("finetune/export_gguf.py", "--config", config)
    assert export.returncode == 0, export.stderr[-3000:]
    return {"family": family, "root": root, "config": config, "gguf": root / "run" / "gguf",
            "train_file": sharegpt_splits["train"], "export": export, "train": trained}


def test_export_follows_the_run_and_names_it_after_the_base(exported):
    family, gguf = exported["family"], exported["gguf"]
    name = f"tiny-{family}-finsent"
    assert sorted(p.name for p in gguf.glob("*.gguf")) == [f"{name}-f16.gguf", f"{name}-q4_k_m.gguf"]
    assert "the served prompt ids are the trained ones" in exported["export"].stderr
    assert "training ids checked against llama.cpp's tokenizer" in exported["train"].stderr
    modelfile = (gguf / "Modelfile.q4_k_m").read_text(encoding="utf-8")
    assert modelfile.startswith(f"FROM ./{name}-q4_k_m.gguf\n")
    assert f'TEMPLATE """{family_record(family).ollama}"""' in modelfile
    assert re.findall(r'^PARAMETER stop "(.*)"$', modelfile, flags=re.M) == list(family_record(family).stop)


def test_the_served_model_answers_the_trained_prompt_in_the_trained_format(exported):
    from finetune.data import read_sharegpt
    from utils.engine import EmbeddedEngine, EngineSettings

    messages = read_sharegpt(exported["train_file"])[0][:-1]  # system prompt and text, as trained
    settings = EngineSettings(gguf_path=exported["gguf"] / f"tiny-{exported['family']}-finsent-q4_k_m.gguf",
                              n_parallel=1, n_ctx=2048, port=None)
    with EmbeddedEngine(settings) as engine:
        reply = httpx.post(f"{engine.base_url}/chat/completions", timeout=120, json={
            "messages": messages, "max_tokens": 8, "temperature": 0}).json()
        props = httpx.get(engine.base_url.removesuffix("/v1") + "/props", timeout=30).json()
    assert reply["choices"][0]["message"]["role"] == "assistant"
    assert reply["usage"]["completion_tokens"] > 0
    assert props["chat_template"] == family_record(exported["family"]).jinja  # the training template travelled


def test_a_family_that_contradicts_the_run_is_a_one_line_error(exported):
    if exported["family"] != "llama-3":
        pytest.skip("one family shows it")
    other = exported["root"] / "other-gguf"
    result = run_script("finetune/export_gguf.py", "--config", exported["config"], "--family", "phi-3",
                        "--gguf-dir", other)
    line = result.stderr.strip().splitlines()[-1]
    assert result.returncode != 0 and line.startswith("error: --family phi-3 contradicts"), result.stderr[-2000:]
    assert "trained as llama-3" in line and "train_summary.json" in line
    assert not list(other.glob("*.gguf"))


def test_a_tokenizer_llama_cpp_reads_otherwise_is_refused_before_training(tmp_path, llama_cpp_vendor):  # noqa: F811
    """Mistral's tokenizer without add_prefix_space: false, as the issue found it: llama.cpp puts a
    space after [INST] that training does not. The message names the tokens and the fix."""
    from transformers import AutoTokenizer

    from finetune.random_models import save_random_model
    from finetune.tokenizer_check import check_before_training, probe_conversations

    base = save_random_model("mistral", tmp_path / "mistral", llama_cpp_vendor, tiny=True,
                             tokenizer=load_family_tokenizer("mistral", llama_cpp_vendor))
    config_path = base / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text(encoding="utf-8"))
    del tokenizer_config["add_prefix_space"]
    config_path.write_text(json.dumps(tokenizer_config), encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(base)
    with pytest.raises(FinsentError) as raised:
        check_before_training(tokenizer, "mistral", str(base), probe_conversations()[:1], llama_cpp_vendor)
    message = str(raised.value)
    assert "from token 2: training has ['▁You'" in message and "llama.cpp ['▁'" in message, message
    assert f'set "add_prefix_space": false in {base}/tokenizer_config.json' in message
    assert "version" not in message


def test_a_merged_folder_without_its_run_summary_is_known_by_its_chat_template(tmp_path,
                                                                                llama_cpp_vendor):  # noqa: F811
    from finetune.gguf_export import TrainedRun

    load_family_tokenizer("phi-3", llama_cpp_vendor).save_pretrained(tmp_path / "merged")
    run = TrainedRun.read(tmp_path / "merged")
    assert (run.family, run.base_model) == ("phi-3", None)
    assert run.family_for(None, "gemma-3") == "phi-3"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    assert TrainedRun.read(tmp_path / "other").family_for(None, "gemma-3") == "gemma-3"  # unknown: the config's


def test_a_run_of_spaces_is_trained_and_served_as_one_space(tmp_path, llama_cpp_vendor):  # noqa: F811
    """Gemma's tokenizer in transformers and llama.cpp split "  traveling" differently (the GPU
    run's leave-one-source-out training stopped on a tweet so): as written the check refuses it
    and says why; read from a ShareGPT file, the text is trained as the eval stage sends it."""
    from transformers import AutoTokenizer

    from finetune.data import read_sharegpt
    from finetune.random_models import save_random_model
    from finetune.tokenizer_check import check_before_training
    from utils.prompts import analysis_messages

    base = save_random_model("gemma-3", tmp_path / "gemma", llama_cpp_vendor, tiny=True,
                             tokenizer=load_family_tokenizer("gemma-3", llama_cpp_vendor))
    tokenizer = AutoTokenizer.from_pretrained(base)
    tweet = "@SouthwestAir  traveling 2bwi nMaryland 2morrw any chance   of a refund?  "
    answer = {"from": "gpt", "value": json.dumps({"reasoning": "x", "sentiment": 0.0, "confidence": 0.5})}
    (tmp_path / "train.jsonl").write_text(json.dumps({"conversations": [
        {"from": "system", "value": analysis_messages(tweet, few_shot=False)[0]["content"]},
        {"from": "human", "value": tweet}, answer]}) + "\n", encoding="utf-8")
    [trained] = read_sharegpt(tmp_path / "train.jsonl")
    assert trained[:-1] == analysis_messages(tweet, few_shot=False)
    check_before_training(tokenizer, "gemma-3", str(base), [trained], llama_cpp_vendor)
    as_written = [trained[0], {"role": "user", "content": tweet}, trained[2]]
    with pytest.raises(FinsentError) as raised:
        check_before_training(tokenizer, "gemma-3", str(base), [as_written], llama_cpp_vendor)
    assert "split a run of spaces into different tokens" in str(raised.value)
    assert "of '@SouthwestAir  traveling" in str(raised.value)  # which row


def test_the_rows_checked_before_training_spread_over_the_whole_file():
    from finetune.tokenizer_check import sample_conversations

    rows = list(range(19_583))
    checked = sample_conversations(rows)
    assert len(checked) == 100 and checked[0] == 0 and checked[-1] > 19_000
    assert sample_conversations(rows[:5]) == rows[:5]
