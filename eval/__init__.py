"""Stage 3: run models on a frozen news snapshot and on labelled data; metrics and reports."""
