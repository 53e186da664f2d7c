"""Extensions: components outside the pipelines that others refer to by name (health_check, bearertokenauth,
file_storage) or that serve tracejudge's own API (eval_service). Each module exports its `factory`."""
