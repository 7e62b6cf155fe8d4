"""Chat formats per model family, as data: one table used by the engine, training and the
Ollama Modelfiles. Add a family by adding an entry, never a branch in code."""
from __future__ import annotations

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
        "stop": ["<end_of_turn>"],
    },
}


def chat_template(family: str) -> str:
    return str(CHAT_TEMPLATES[family]["jinja"])
