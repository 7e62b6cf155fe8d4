"""Chat templates per family: the loss covers the assistant answer only (checked token by token
on each family's real tokenizer), the Ollama TEMPLATE renders the prompt training used, and
every family's Modelfile carries its stops and the training system prompt."""
from __future__ import annotations

import json
import re

import pytest

from finetune.data import IGNORE_INDEX, read_sharegpt, tokenize_conversation
from finetune.modelfile import render_modelfile
from finetune.recipe import prepare_tokenizer
from tests.finetune_fixtures import (llama_cpp_vendor, load_family_tokenizer, phrasebank_rows,  # noqa: F401
                                     sharegpt_record)
from utils.chat_templates import FAMILIES, family_record
from utils.errors import FinsentError
from utils.prompts import system_prompt

FAMILY_NAMES = sorted(FAMILIES)


@pytest.fixture(scope="module")
def conversation(shared_data, tmp_path_factory):
    text, label = phrasebank_rows(shared_data, 1, offset=42)[0]
    path = tmp_path_factory.mktemp("one") / "one.jsonl"
    path.write_text(json.dumps(sharegpt_record(text, label)) + "\n", encoding="utf-8")
    return read_sharegpt(path)[0]


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_loss_covers_exactly_the_assistant_answer(family, conversation, llama_cpp_vendor):  # noqa: F811
    tokenizer = prepare_tokenizer(load_family_tokenizer(family, llama_cpp_vendor), family)
    example = tokenize_conversation(tokenizer, family, conversation)
    ids, labels = example["input_ids"], example["labels"]
    assert len(ids) == len(labels)

    first_learned = next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
    # Everything before the answer is masked, everything from it on is learnt as the token itself.
    assert all(label == IGNORE_INDEX for label in labels[:first_learned])
    assert labels[first_learned:] == ids[first_learned:]

    # The masked part is exactly the prompt inference sends: system, user text, generation prompt.
    prompt = tokenizer.apply_chat_template(conversation[:-1], chat_template=family_record(family).jinja, tokenize=False,
                                           add_generation_prompt=True)
    assert ids[:first_learned] == tokenizer(prompt, add_special_tokens=False)["input_ids"]
    masked_text = tokenizer.decode(ids[:first_learned])
    assert conversation[1]["content"] in masked_text
    assert system_prompt().splitlines()[0] in masked_text

    # The learnt part is the answer, then the family's end-of-turn token, as one special token.
    end = family_record(family).end_of_turn
    end_id = tokenizer.convert_tokens_to_ids(end)
    learned = ids[first_learned:]
    assert end_id in learned and end_id != tokenizer.unk_token_id
    answer_ids = learned[: learned.index(end_id)]
    assert tokenizer.decode(answer_ids).strip() == conversation[-1]["content"]
    assert tokenizer.decode(learned[learned.index(end_id) + 1:]).strip() == ""


def test_trl_collator_keeps_the_answer_only_labels(conversation, llama_cpp_vendor):  # noqa: F811
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    tokenizer = prepare_tokenizer(load_family_tokenizer("llama-3", llama_cpp_vendor), "llama-3")
    examples = [tokenize_conversation(tokenizer, "llama-3", conversation),
                tokenize_conversation(tokenizer, "llama-3", conversation[:2] + [
                    {"role": "assistant", "content": '{"sentiment": 0.0}'}])]
    batch = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)(examples)
    for row, example in enumerate(examples):
        length = len(example["input_ids"])
        assert batch["labels"][row, :length].tolist() == example["labels"]
        assert (batch["labels"][row, length:] == IGNORE_INDEX).all()


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_training_template_renders_ollamas_own_prompts(family, repo_root):
    """Ollama's renderings of its templates (its template/testdata), one turn and several, with and
    without a system prompt: the training template writes the same text after the BOS token."""
    import jinja2

    reference = json.loads((repo_root / "tests" / "fixtures" / "ollama_renderings.json").read_text(encoding="utf-8"))
    template = jinja2.Environment().from_string(family_record(family).jinja)
    for case, messages in reference["messages"].items():
        ollama = reference["renderings"][family][case]
        if family == "gemma-3":  # Ollama's gemma3 file ends in a newline Gemma is not trained on
            ollama = ollama.removesuffix("\n")
        ours = template.render(messages=messages, add_generation_prompt=True, bos_token="<BOS>", eos_token="</s>")
        assert ours == "<BOS>" + ollama, case


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_modelfile_per_family(family):
    text = render_modelfile("./model-q4_k_m.gguf", family, temperature=0.2, num_ctx=4096)
    assert text.startswith("FROM ./model-q4_k_m.gguf\n")
    assert f'TEMPLATE """{family_record(family).ollama}"""' in text
    assert f'SYSTEM """{system_prompt()}"""' in text
    stops = re.findall(r'^PARAMETER stop "(.*)"$', text, flags=re.M)
    assert stops == list(family_record(family).stop)
    assert re.search(r"^PARAMETER temperature 0.2$", text, flags=re.M)
    assert re.search(r"^PARAMETER num_ctx 4096$", text, flags=re.M)


def test_root_modelfile_is_the_default_models(repo_root):
    from finetune.settings import FinetuneConfig
    from finsent.config import load_config

    cfg: FinetuneConfig = load_config(repo_root / "config.yaml").finetune
    gguf = f"./{cfg.output_dir.as_posix()}/gguf/{cfg.gguf_model_name}-q4_k_m.gguf"
    assert (repo_root / "Modelfile").read_text(encoding="utf-8") == render_modelfile(
        gguf, cfg.family, cfg.temperature, cfg.num_ctx)


def test_unknown_family_is_a_one_line_error():
    with pytest.raises(FinsentError, match="unknown model family 'llama-2'.*gemma-3"):
        family_record("llama-2").jinja
