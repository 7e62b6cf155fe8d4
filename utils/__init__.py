"""Shared pieces of every finsent stage: the answer schema and label rule, I/O, the embedded engine. Imports no stage."""
