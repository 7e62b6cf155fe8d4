"""Stage 1: public data + LLM-labelled news → a ShareGPT dataset with leak-free splits."""
