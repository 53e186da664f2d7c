"""tracejudge.judge: the judge cascade (deterministic checks, local and heavy judges). Built in later issues."""
