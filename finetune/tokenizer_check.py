"""Training and serving must see the same token ids: the ids finetune/data.py trains on against the
ids llama.cpp makes of the same conversation. A difference (a space llama.cpp puts after a special
token, a BOS one side adds, a control token one side splits) costs nothing in transformers' own
loss and answers in garbage once the GGUF is served, so it is refused:

- before training (seconds): the base's tokenizer files through llama.cpp's converter with
  --vocab-only, tokenized by llama.cpp (llama-cpp-python, vocab only) as its server would;
- at export: the exported GGUF in the embedded engine, its own chat template through
  /apply-template, then /tokenize.
"""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from finetune.data import IGNORE_INDEX, tokenize_conversation
from utils.chat_templates import family_record
from utils.errors import FinsentError

log = logging.getLogger(__name__)

SPACE = "\u2581"  # SentencePiece's visible space
CHECKED_ROWS = 100  # training rows checked before training: about a second
# Texts the saved tokenizer must split exactly as llama.cpp does: numbers, currency, unicode,
# a tweet, and (added per family) a whole chat-formatted training row with its special tokens.
TOKENIZER_PROBES = ("Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in 2007 .",
                    "@united it's been almost 2 weeks... still no word?! Flight AA1234 – 3h late 😡",
                    "Nokia's Q3 net sales: €1,234.5 million (−3 %), Ääkkönen Oyj")


def probe_conversations() -> list[list[dict[str, str]]]:
    """Rows shaped like step 05's: the real system prompt, text with numbers, currency and unicode,
    and a JSON answer."""
    from utils.prompts import system_prompt

    answer = json.dumps({"reasoning": "Profit rose.", "sentiment": 0.8, "confidence": 0.9})
    return [[{"role": "system", "content": system_prompt()}, {"role": "user", "content": text},
             {"role": "assistant", "content": answer}] for text in TOKENIZER_PROBES]


def first_difference(tokenizer, ours: list[int], theirs: list[int]) -> tuple[int, list[str], list[str]] | None:
    if ours == theirs:
        return None
    at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    return at, tokenizer.convert_ids_to_tokens(ours[at:at + 4]), tokenizer.convert_ids_to_tokens(theirs[at:at + 4])


def remedy(ours: list[str], theirs: list[str], folder: str) -> str:
    if any(len(token) > 1 and set(token) == {SPACE} for token in ours + theirs):
        return ("the two split a run of spaces into different tokens: make it one space in the data (finsent "
                "does so in every user turn it trains on and every prompt it sends: utils.prompts.prompt_text; "
                "a run of spaces in a system turn is left as written)")
    if theirs and ours and theirs[0] in (SPACE, SPACE + ours[0]):
        return (f"llama.cpp puts a space before text that follows a special token and this tokenizer does not: "
                f"set \"add_prefix_space\": false in {folder}/tokenizer_config.json (llama.cpp's converter "
                "copies it into the GGUF), or fix the tokenizer to match")
    if ours and ours[0] in (SPACE, SPACE + (theirs[0] if theirs else "")):
        return (f"this tokenizer puts a space before text after a special token where llama.cpp does not: "
                f"remove \"add_prefix_space\": false from {folder}/tokenizer_config.json, or fix the tokenizer")
    return (f"make {folder}'s tokenizer files (tokenizer.json, tokenizer_config.json, tokenizer.model) agree with "
            "each other, or use the family's released tokenizer")


def sample_conversations(conversations: list, count: int = CHECKED_ROWS) -> list:
    """Up to `count` conversations spread evenly over the file, its first among them: a quirk of
    the data (a run of spaces in 7% of the real rows) shows up where the first rows miss it."""
    return conversations[::max(1, len(conversations) // count)][:count]


def _user_text(conversation: list[dict[str, str]]) -> str:
    return next((m["content"] for m in conversation if m["role"] == "user"), "")


def _mismatch(what: str, diff: tuple[int, list[str], list[str]], folder: str, conversation) -> FinsentError:
    at, ours, theirs = diff
    return FinsentError(f"{what}: training and llama.cpp tokenize the chat of {_user_text(conversation)[:50]!r} "
                        f"differently from token {at}: training "
                        f"has {ours}, llama.cpp {theirs}; a model trained so answers in garbage once served from "
                        f"GGUF. {remedy(ours, theirs, folder)}")


def _vocab_only_gguf(tokenizer, base_model: str, llama_cpp: Path, workdir: Path) -> Path:
    """The GGUF vocabulary export would write: the base's config, the tokenizer as training saves it
    with the merged model, the base's tokenizer.model (train.py copies it too)."""
    from finetune.gguf_export import converter_env
    from finetune.llama_cpp_source import CONVERTER
    from finetune.recipe import load_base_config

    folder = workdir / "tokenizer"
    load_base_config(base_model).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    sentencepiece = _base_file(base_model, "tokenizer.model")
    if sentencepiece is not None:
        shutil.copyfile(sentencepiece, folder / "tokenizer.model")
    target = workdir / "vocab.gguf"
    result = subprocess.run([sys.executable, str(llama_cpp / CONVERTER), str(folder), "--vocab-only",
                             "--outfile", str(target)], capture_output=True, text=True, env=converter_env())
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise FinsentError(f"llama.cpp's converter cannot read the tokenizer of {base_model}: {last}")
    return target


def _base_file(base_model: str, name: str) -> Path | None:
    local = Path(base_model) / name
    if local.is_file():
        return local
    if Path(base_model).exists():
        return None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(base_model, name)
    return Path(cached) if isinstance(cached, str) else None


def _prompt_ids(tokenizer, family: str, conversation: list[dict[str, str]]) -> list[int]:
    """The ids training gives the prompt (everything before the answer): what serving must send."""
    trained = tokenize_conversation(tokenizer, family, conversation)
    return trained["input_ids"][:next(i for i, label in enumerate(trained["labels"]) if label != IGNORE_INDEX)]


def _check(tokenizer, family: str, conversations, served_prompt_ids, served_token_ids, what: str, folder: str) -> None:
    """Each conversation's trained prompt ids against `served_prompt_ids(messages)`, and the family's
    end of turn (which training teaches the model to emit) against `served_token_ids(text)`."""
    for conversation in conversations:
        trained = _prompt_ids(tokenizer, family, conversation)
        diff = first_difference(tokenizer, trained, served_prompt_ids(conversation[:-1]))
        if diff is not None:
            raise _mismatch(what, diff, folder, conversation)
    end = family_record(family).end_of_turn
    theirs, ours = served_token_ids(end), [tokenizer.convert_tokens_to_ids(end)]
    if theirs != ours:
        raise FinsentError(f"{what}: llama.cpp reads the end of turn {end} as {theirs}, training as {ours}: served "
                           f"answers would not stop; {folder}'s tokenizer.model or tokenizer.json must hold {end} "
                           "as a special token")


def check_before_training(tokenizer, family: str, base_model: str, conversations: list[list[dict[str, str]]],
                          llama_cpp: Path) -> None:
    """A one-line error unless llama.cpp, reading the base's vocabulary as export will, tokenizes
    each prompt (rendered with the family's template) into the ids training uses."""
    from llama_cpp import Llama

    with tempfile.TemporaryDirectory(prefix="finsent-vocab-") as workdir:
        gguf = _vocab_only_gguf(tokenizer, base_model, llama_cpp, Path(workdir))
        vocab = Llama(model_path=str(gguf), vocab_only=True, verbose=False)
        adds_bos = bool(vocab.tokenize(b"", add_bos=True, special=True))

        def served_prompt_ids(messages: list[dict[str, str]]) -> list[int]:
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            if adds_bos and tokenizer.bos_token:  # llama.cpp's server drops a rendered BOS it adds itself
                text = text.removeprefix(tokenizer.bos_token)
            return vocab.tokenize(text.encode("utf-8"), add_bos=True, special=True)

        _check(tokenizer, family, conversations, served_prompt_ids,
               lambda text: vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True),
               f"base model {base_model} ({family})", base_model)
        vocab.close()
    log.info("training ids checked against llama.cpp's tokenizer on %d conversations", len(conversations))


def check_exported_gguf(gguf: Path, folder: Path, family: str, conversations: list[list[dict[str, str]]]) -> None:
    """A one-line error unless the embedded engine, serving `gguf` (exported from `folder`) with its
    own chat template, turns each prompt into the ids training used and reads the end of turn as one
    token."""
    import httpx
    from transformers import AutoTokenizer

    from utils.engine import EmbeddedEngine, EngineSettings

    tokenizer = AutoTokenizer.from_pretrained(folder)
    with EmbeddedEngine(EngineSettings(gguf_path=gguf, n_parallel=1, n_ctx=2048)) as engine:
        root = f"http://127.0.0.1:{engine.port}"

        def served(path: str, payload: dict) -> dict:
            return httpx.post(f"{root}/{path}", json=payload, timeout=60).raise_for_status().json()

        def served_prompt_ids(messages: list[dict[str, str]]) -> list[int]:
            prompt = served("apply-template", {"messages": messages, "add_generation_prompt": True})["prompt"]
            return served("tokenize", {"content": prompt, "add_special": True, "parse_special": True})["tokens"]

        def served_token_ids(text: str) -> list[int]:
            return served("tokenize", {"content": text, "add_special": False, "parse_special": True})["tokens"]

        _check(tokenizer, family, conversations, served_prompt_ids, served_token_ids,
               f"{gguf.name} ({family})", str(folder))
    log.info("%s: the served prompt ids are the trained ones (%d conversations)", gguf.name, len(conversations))
