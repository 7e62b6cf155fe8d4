"""Chat formats per model family, as data: one table used by the engine, training and the
Ollama Modelfiles. Add a family by adding an entry, never a branch in code.

Each entry holds:
- `jinja`: the Hugging Face chat template (rendered by the tokenizer for training and by
  llama.cpp for serving); messages are system / user / assistant. It renders a conversation
  exactly as `ollama` does (plus the BOS token, which Ollama's llama.cpp adds when tokenizing), so
  the ids a model is trained on are the ids Ollama and llama.cpp serve it.
- `ollama`: Ollama's own TEMPLATE for the family, as in github.com/ollama/ollama's template/
  folder (commit fb30760, `ollama_name`.gotmpl), for the Modelfile.
- `stop`: Ollama's stop PARAMETERs for the family (template/`ollama_name`.json).
- `end_of_turn`: the string that closes every assistant turn in training (the model learns to
  emit it; llama.cpp and Ollama stop on it).
"""
from __future__ import annotations

from utils.errors import FinsentError

# Families without a system role (Gemma, Mistral): the system prompt opens the first user turn.
_SYSTEM_INTO_FIRST_USER = (
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
)

CHAT_TEMPLATES: dict[str, dict[str, object]] = {
    "gemma-3": {
        # Gemma has no system role: the system prompt opens the first user turn.
        "jinja": (
            "{{ bos_token }}"
            + _SYSTEM_INTO_FIRST_USER +
            "{%- for message in loop_messages -%}"
            "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
            "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '')"
            " + message['content'] + '<end_of_turn>\n' }}"
            "{%- endfor -%}"
            "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
        ),
        # Ollama's file ends in one more newline, which its own testdata renders as a prompt ending
        # "<start_of_turn>model\n\n"; Gemma is trained (by Google, and here) on "model\n", so the
        # Modelfile's copy stops before it.
        "ollama": (
            "{{- range $i, $_ := .Messages }}\n"
            "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
            "{{- if eq .Role \"user\" }}<start_of_turn>user\n"
            "{{- if and (eq $i 1) $.System }}\n"
            "{{ $.System }}\n"
            "{{ end }}\n"
            "{{ .Content }}<end_of_turn>\n"
            "{{ else if eq .Role \"assistant\" }}<start_of_turn>model\n"
            "{{ .Content }}<end_of_turn>\n"
            "{{ end }}\n"
            "{{- if $last }}<start_of_turn>model\n"
            "{{ end }}\n"
            "{{- end }}"
        ),
        "ollama_name": "gemma3-instruct",
        "stop": ["<end_of_turn>"],
        "end_of_turn": "<end_of_turn>",
        "license": "gemma",  # the base model's, as the Hub names it: a fine-tune inherits it
    },
    "llama-3": {
        "jinja": (
            "{{ bos_token }}"
            "{%- for message in messages -%}"
            "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
            " + message['content'] + '<|eot_id|>' }}"
            "{%- endfor -%}"
            "{%- if add_generation_prompt -%}"
            "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
            "{%- endif -%}"
        ),
        "ollama": (
            "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
            "{{ .Content }}<|eot_id|>\n"
            "{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
        ),
        "ollama_name": "llama3-instruct",
        "stop": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        "end_of_turn": "<|eot_id|>",
        "license": "llama3",
    },
    "mistral": {
        # Mistral Instruct v0.3 has no system role either: the system prompt opens the first [INST];
        # the answer starts with a space after [/INST] and ends with </s>.
        "jinja": (
            "{{ bos_token }}"
            + _SYSTEM_INTO_FIRST_USER +
            "{%- for message in loop_messages -%}"
            "{%- if message['role'] == 'user' -%}"
            "{{ '[INST] ' + (first_user_prefix if loop.first else '') + message['content'] + '[/INST]' }}"
            "{%- else -%}"
            "{{ ' ' + message['content'] + eos_token }}"
            "{%- endif -%}"
            "{%- endfor -%}"
        ),
        "ollama": (
            "[INST] {{ range $index, $_ := .Messages }}\n"
            "{{- if eq .Role \"system\" }}{{ .Content }}\n\n"
            "{{ else if eq .Role \"user\" }}{{ .Content }}[/INST]\n"
            "{{- else if eq .Role \"assistant\" }} {{ .Content }}</s>[INST] {{ end }}\n"
            "{{- end }}"
        ),
        "ollama_name": "mistral-instruct",
        # Ollama's mistral-instruct.json lists ChatML's <|im_start|> and <|im_end|>, which Mistral's
        # vocabulary does not have: the stops here are Mistral's own turn markers.
        "stop": ["</s>", "[INST]", "[/INST]"],
        "end_of_turn": "</s>",
        "license": "apache-2.0",
    },
    "phi-3": {
        "jinja": (
            "{{ bos_token }}"
            "{%- for message in messages -%}"
            "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
            "{%- endfor -%}"
            "{%- if add_generation_prompt -%}{{ '<|assistant|>\n' }}{%- endif -%}"
        ),
        "ollama": (
            "{{- range .Messages }}<|{{ .Role }}|>\n"
            "{{ .Content }}<|end|>\n"
            "{{ end }}<|assistant|>\n"
        ),
        "ollama_name": "phi-3",
        "stop": ["<|end|>", "<|system|>", "<|user|>", "<|assistant|>"],
        "end_of_turn": "<|end|>",
        "license": "mit",
    },
}


def family_entry(family: str) -> dict[str, object]:
    try:
        return CHAT_TEMPLATES[family]
    except KeyError:
        raise FinsentError(f"unknown model family '{family}' (known: {', '.join(sorted(CHAT_TEMPLATES))})") from None


def chat_template(family: str) -> str:
    return str(family_entry(family)["jinja"])


def ollama_template(family: str) -> str:
    return str(family_entry(family)["ollama"])


def stop_strings(family: str) -> list[str]:
    return list(family_entry(family)["stop"])  # type: ignore[arg-type]


def end_of_turn(family: str) -> str:
    return str(family_entry(family)["end_of_turn"])


def family_of_chat_template(template: str | None) -> str | None:
    """The family whose `jinja` is `template` (a tokenizer's saved chat template), or None."""
    return next((family for family, entry in CHAT_TEMPLATES.items() if entry["jinja"] == template), None)
