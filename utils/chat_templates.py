"""Chat formats per model family, as data: one table used by the engine, training and the
Ollama Modelfiles. Add a family by adding an entry, never a branch in code.

Each entry holds:
- `jinja`: the Hugging Face chat template (rendered by the tokenizer for training and by
  llama.cpp for serving); messages are system / user / assistant.
- `ollama`: the same format as an Ollama Modelfile TEMPLATE (Go template: .System, .Prompt,
  .Response).
- `stop`: the strings that end an assistant turn (the first one closes every assistant turn in
  training, so the model learns to emit it).
"""
from __future__ import annotations

from utils.errors import FinsentError

CHAT_TEMPLATES: dict[str, dict[str, object]] = {
    "gemma-3": {
        # Gemma has no system role: the system prompt opens the first user turn.
        "jinja": (
            "{{ bos_token }}"
            "{%- if messages[0]['role'] == 'system' -%}"
            "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
            "{%- set loop_messages = messages[1:] -%}"
            "{%- else -%}"
            "{%- set first_user_prefix = '' -%}"
            "{%- set loop_messages = messages -%}"
            "{%- endif -%}"
            "{%- for message in loop_messages -%}"
            "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
            "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '')"
            " + message['content'] | trim + '<end_of_turn>\n' }}"
            "{%- endfor -%}"
            "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
        ),
        "ollama": (
            "<start_of_turn>user\n"
            "{{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}<end_of_turn>\n"
            "<start_of_turn>model\n"
            "{{ .Response }}<end_of_turn>\n"
        ),
        "stop": ["<end_of_turn>"],
    },
    "llama-3": {
        "jinja": (
            "{{ bos_token }}"
            "{%- for message in messages -%}"
            "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
            " + message['content'] | trim + '<|eot_id|>' }}"
            "{%- endfor -%}"
            "{%- if add_generation_prompt -%}"
            "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
            "{%- endif -%}"
        ),
        "ollama": (
            "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
            "{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>{{ end }}"
            "<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>"
        ),
        "stop": ["<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"],
    },
    "mistral": {
        # Mistral Instruct has no system role either: the system prompt opens the first [INST].
        "jinja": (
            "{{ bos_token }}"
            "{%- if messages[0]['role'] == 'system' -%}"
            "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
            "{%- set loop_messages = messages[1:] -%}"
            "{%- else -%}"
            "{%- set first_user_prefix = '' -%}"
            "{%- set loop_messages = messages -%}"
            "{%- endif -%}"
            "{%- for message in loop_messages -%}"
            "{%- if message['role'] == 'user' -%}"
            "{{ '[INST] ' + (first_user_prefix if loop.first else '') + message['content'] | trim + ' [/INST]' }}"
            "{%- else -%}"
            "{{ message['content'] | trim + eos_token }}"
            "{%- endif -%}"
            "{%- endfor -%}"
        ),
        "ollama": "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }} [/INST]{{ .Response }}</s>",
        "stop": ["</s>", "[INST]", "[/INST]"],
    },
    "phi-3": {
        "jinja": (
            "{{ bos_token }}"
            "{%- for message in messages -%}"
            "{{ '<|' + message['role'] + '|>\n' + message['content'] | trim + '<|end|>\n' }}"
            "{%- endfor -%}"
            "{%- if add_generation_prompt -%}{{ '<|assistant|>\n' }}{%- endif -%}"
        ),
        "ollama": (
            "{{ if .System }}<|system|>\n{{ .System }}<|end|>\n{{ end }}"
            "{{ if .Prompt }}<|user|>\n{{ .Prompt }}<|end|>\n{{ end }}"
            "<|assistant|>\n{{ .Response }}<|end|>\n"
        ),
        "stop": ["<|end|>", "<|user|>", "<|endoftext|>"],
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
