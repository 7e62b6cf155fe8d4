"""Shared pieces of every finsent stage: the answer schema, config, I/O and the embedded engine."""
