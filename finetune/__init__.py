"""Stage 2: LoRA / full fine-tune, GGUF export and Ollama Modelfiles."""
