"""Training the embedded judge from labelled (query, context, response) records: data preparation here (pure
Python); the model itself is trained by `make train-judge` in a venv of its own (torch is not a runtime dependency)."""
