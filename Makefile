# Two commands for a fresh machine:
#   make run    set everything up, train + export + verify both models, then serve the demo
#   make test   set everything up and run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARTIFACTS ?= artifacts
HOST ?= 127.0.0.1
PORT ?= 7860
# The real MNIST files (never committed, never downloaded at test time).
MNIST_DATA_DIR ?= $(abspath ../shared/data/mnist)
export MNIST_DATA_DIR

.PHONY: run test venv system-deps pipeline demo bench bench-accuracy bench-first-prediction runtime-venv clean

# The venv is (re)built when pyproject.toml changes.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[train,demo,litert,dev]'
	touch $@

venv: $(BIN)/.installed

# Debian packages the tests use: chromium (browser test of the demo) and Fashion-MNIST.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing="$$missing dataset-fashion-mnist"; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  echo "Installing Debian packages:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$sudo apt-get install -y -q $$missing || { $$sudo apt-get update -q && $$sudo apt-get install -y -q $$missing; }; \
	fi

pipeline: venv
	$(BIN)/mnist-edge pipeline --out $(ARTIFACTS)

demo: venv
	$(BIN)/mnist-edge demo --model $(ARTIFACTS) --host $(HOST) --port $(PORT)

# Train, export and verify (reusing what is already done); the demo serves the first model as
# soon as it is published, picks up the others as they come, and keeps serving (Ctrl+C stops).
run: venv
	$(BIN)/mnist-edge pipeline --out $(ARTIFACTS) --serve --host $(HOST) --port $(PORT)

test: venv system-deps
	$(BIN)/python -m pytest

# A venv with the runtime only (`pip install .`), for the install-footprint and cold-start figures.
runtime-venv:
	test -x .venv-runtime/bin/python || $(PYTHON) -m venv .venv-runtime
	.venv-runtime/bin/python -m pip install --quiet .

bench: pipeline runtime-venv
	$(BIN)/mnist-edge bench --model $(ARTIFACTS) --runtime-venv .venv-runtime --train-venv $(VENV)

# Both models and the keras.io convnet (the yardstick) from scratch, one table. ACCURACY_ARGS=--previous
# also trains the previous CNN side by side; --seeds 42,43,44 repeats every row.
bench-accuracy: venv
	$(BIN)/python bench/accuracy.py --out bench-artifacts $(ACCURACY_ARGS)

# make run on a fresh clone of HEAD (reusing this venv's packages): seconds to the first prediction served.
bench-first-prediction: venv
	$(BIN)/python bench/first_prediction.py --out bench-artifacts/first_prediction.md

clean:
	rm -rf $(ARTIFACTS) bench-artifacts test-artifacts .pytest_cache
