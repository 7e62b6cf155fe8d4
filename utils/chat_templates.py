"""Model families as data: one typed record each (`ModelFamily`), used by the engine, training,
export and the Ollama Modelfiles. Add a family by adding its two template files and a record,
never a branch in code.

Each family's templates are package data beside this module, byte for byte what is used:
- `templates/<family>.jinja`: the Hugging Face chat template (rendered by the tokenizer for
  training and by llama.cpp for serving); messages are system / user / assistant. It renders a
  conversation exactly as `ollama` does (plus the BOS token, which Ollama's llama.cpp adds when
  tokenizing), so the ids a model is trained on are the ids Ollama and llama.cpp serve it.
- `templates/<family>.gotmpl`: Ollama's own TEMPLATE for the family, as in
  github.com/ollama/ollama's template/ folder (commit fb30760, `ollama_name`.gotmpl), for the
  Modelfile.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from utils.errors import FinsentError

TEMPLATES_DIR = Path(__file__).with_name("templates")


@dataclass(frozen=True)
class ModelFamily:
    name: str
    ollama_name: str  # Ollama's name for the template (its template/<ollama_name>.gotmpl)
    stop: tuple[str, ...]  # Ollama's stop PARAMETERs (template/<ollama_name>.json)
    end_of_turn: str  # closes every assistant turn in training; llama.cpp and Ollama stop on it

    @cached_property
    def jinja(self) -> str:
        return (TEMPLATES_DIR / f"{self.name}.jinja").read_text(encoding="utf-8")

    @cached_property
    def ollama(self) -> str:
        return (TEMPLATES_DIR / f"{self.name}.gotmpl").read_text(encoding="utf-8")


FAMILIES: dict[str, ModelFamily] = {family.name: family for family in (
    # Gemma has no system role: the system prompt opens the first user turn. Ollama's file ends in
    # one more newline, which its own testdata renders as a prompt ending "<start_of_turn>model\n\n";
    # Gemma is trained (by Google, and here) on "model\n", so the Modelfile's copy stops before it.
    ModelFamily("gemma-3", "gemma3-instruct", ("<end_of_turn>",), "<end_of_turn>"),
    ModelFamily("llama-3", "llama3-instruct", ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"), "<|eot_id|>"),
    # Mistral Instruct v0.3 has no system role either: the system prompt opens the first [INST]; the
    # answer starts with a space after [/INST] and ends with </s>. Ollama's mistral-instruct.json
    # lists ChatML's <|im_start|> and <|im_end|>, which Mistral's vocabulary does not have: the
    # stops here are Mistral's own turn markers.
    ModelFamily("mistral", "mistral-instruct", ("</s>", "[INST]", "[/INST]"), "</s>"),
    ModelFamily("phi-3", "phi-3", ("<|end|>", "<|system|>", "<|user|>", "<|assistant|>"), "<|end|>"),
)}


def family_record(name: str) -> ModelFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        raise FinsentError(f"unknown model family '{name}' (known: {', '.join(sorted(FAMILIES))})") from None


def family_of_chat_template(template: str | None) -> str | None:
    """The family whose `jinja` is `template` (a tokenizer's saved chat template), or None."""
    return next((name for name, family in FAMILIES.items() if family.jinja == template), None)
