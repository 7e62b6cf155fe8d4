"""Step 05's ShareGPT JSONL → token ids and labels, the loss on the assistant answers only.

A record: {"conversations": [{"from": "system"|"human"|"gpt", "value": str}, ...], "source": ..., "label": ...}
(utils.sharegpt_format).
Each conversation is rendered with the family's chat template (utils.chat_templates) and cut at
every assistant turn: the text up to the generation prompt is masked (-100), the answer and
its end-of-turn marker are learnt. The cut is the one inference sees (prompt tokens, then the
model's own tokens), so the trained tokens are exactly the ones the model will have to emit.
"""
from __future__ import annotations

import logging
from pathlib import Path

from finetune.settings import CPU_EVAL_LIMIT
from utils.chat_templates import family_record
from utils.errors import FinsentError
from utils.prompts import prompt_text
from utils.sharegpt_format import ShareGPTRecord, read_split

log = logging.getLogger(__name__)

# The trainer cuts rows at max_seq_length, answer last, and drops those left with nothing to learn.
# A few long rows are normal (a long article); more than this share means the setting or the
# tokenizer is wrong (a tokenizer splitting text into characters makes every row several times
# longer: the run then learns from the few rows that fit, in a tokenization llama.cpp never makes).
MAX_TRUNCATED_SHARE = 0.01

IGNORE_INDEX = -100


def read_sharegpt(path: Path) -> list[list[dict[str, str]]]:
    """The conversations of a ShareGPT split file (utils.sharegpt_format) as chat messages; any
    malformed row is a one-line error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FinsentError(f"dataset not found: {path} (build it with dataset_builder step 05, or set finetune.train_file)")
    conversations = [_messages(record, f"{path}: line {record.line}") for record in read_split(path)]
    if not conversations:
        raise FinsentError(f"{path}: no conversations in the file")
    return conversations


def read_validation(path: Path, limit: int | None, cuda: bool) -> list[list[dict[str, str]]]:
    """The first `limit` validation conversations (finetune.eval_limit; None: all of them on a GPU,
    CPU_EVAL_LIMIT on a CPU, where validating a whole split takes hours)."""
    conversations = read_sharegpt(path)
    limit = limit or (None if cuda else CPU_EVAL_LIMIT)
    if limit and len(conversations) > limit:
        log.info("validation: the first %d of %d rows of %s (finetune.eval_limit)", limit, len(conversations), path)
    return conversations[:limit]


def _messages(record: ShareGPTRecord, where: str) -> list[dict[str, str]]:
    if record.first("assistant") is None:
        raise FinsentError(f"{where}: no 'gpt' turn to learn from")
    # the text as the eval stage sends it (utils.prompts.analysis_messages), so both tokenize it alike
    return [{"role": role, "content": prompt_text(text) if role == "user" else text} for role, text in record.messages]


def _render(tokenizer, template: str, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                         add_generation_prompt=generation_prompt)


def tokenize_conversation(tokenizer, family: str, messages: list[dict[str, str]]) -> dict[str, list[int]]:
    """input_ids and labels (IGNORE_INDEX outside the assistant turns) for one conversation."""
    template = family_record(family).jinja
    input_ids: list[int] = []
    labels: list[int] = []
    rendered = ""
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = _render(tokenizer, template, messages[:index], generation_prompt=True)
        with_answer = _render(tokenizer, template, messages[: index + 1], generation_prompt=False)
        _append(tokenizer, prompt, rendered, input_ids, labels, learn=False)
        _append(tokenizer, with_answer, prompt, input_ids, labels, learn=True)
        rendered = with_answer
    return {"input_ids": input_ids, "labels": labels}


def _append(tokenizer, text: str, already: str, input_ids: list[int], labels: list[int], learn: bool) -> None:
    """The ids `text` adds to `already`: the whole text's ids past those already there where they
    extend them, as llama.cpp reads the conversation (a SentencePiece tokenizer would otherwise
    start the answer, tokenized alone, with the space it prefixes to a text); the new part
    tokenized alone where a token spans the cut."""
    if not text.startswith(already):
        raise FinsentError("the chat template does not render a conversation as a growing prefix; "
                           "masking the prompt needs one")
    whole = tokenizer(text, add_special_tokens=False)["input_ids"]
    if whole[:len(input_ids)] == input_ids:
        ids = whole[len(input_ids):]
    else:
        ids = tokenizer(text[len(already):], add_special_tokens=False)["input_ids"]
    input_ids.extend(ids)
    labels.extend(ids if learn else [IGNORE_INDEX] * len(ids))


def tokenized_dataset(conversations: list[list[dict[str, str]]], tokenizer, family: str,
                      max_length: int | None = None, source: str = "the dataset"):
    """A `datasets.Dataset` of input_ids + labels, ready for TRL's SFTTrainer; with `max_length`,
    rows longer than it are counted first (see check_lengths)."""
    from datasets import Dataset

    rows = [tokenize_conversation(tokenizer, family, messages) for messages in conversations]
    if max_length is not None:
        check_lengths([len(row["input_ids"]) for row in rows], max_length, source)
    return Dataset.from_list(rows)


def check_lengths(lengths: list[int], max_length: int, source: str) -> None:
    """A warning for a few rows over `max_length` tokens, a one-line error for more than
    MAX_TRUNCATED_SHARE of them."""
    too_long = [n for n in lengths if n > max_length]
    if not too_long:
        return
    share = len(too_long) / len(lengths)
    message = (f"{source}: {len(too_long)} of {len(lengths)} conversations ({share:.1%}) are longer than "
               f"max_seq_length = {max_length} tokens (longest {max(too_long)}, median row "
               f"{sorted(lengths)[len(lengths) // 2]}): their answers are cut")
    if share > MAX_TRUNCATED_SHARE:
        raise FinsentError(f"{message}; raise --max-seq-length, or check the tokenizer if rows this long are "
                           "unexpected")
    log.warning(message)
