# Two commands for a fresh machine:
#   make run    set everything up, train + export + verify both models, serve the demo and the web app
#   make test   set everything up and run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARTIFACTS ?= artifacts
HOST ?= 127.0.0.1
PORT ?= 7860
WEB_PORT ?= 8000
SITE ?= site
# The real MNIST files (never committed, never downloaded at test time).
MNIST_DATA_DIR ?= $(abspath ../shared/data/mnist)
export MNIST_DATA_DIR

.PHONY: run test venv system-deps pipeline demo web serve-web bench bench-micro bench-accuracy bench-generalisation bench-first-prediction bench-handwriting bench-read bench-web bench-batch experiment compare runtime-venv clean

# The venv is (re)built when pyproject.toml changes.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[train,demo,litert,signing,scale,micro,dev]'
	touch $@

venv: $(BIN)/.installed

# Debian packages the tests use: chromium (browser tests of the demo and the web app), Fashion-MNIST,
# Node.js + npm (the web app's runtime files come from npm at build time), and the TrueType fonts
# that print the "new writer" digits of the handwriting tests and benchmark.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing="$$missing dataset-fashion-mnist"; \
	[ -d /usr/share/fonts/truetype/dejavu ] || missing="$$missing fonts-dejavu-core"; \
	[ -d /usr/share/fonts/truetype/liberation ] || missing="$$missing fonts-liberation"; \
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
# soon as it is published and picks up the others as they come; once all are ready the web app is
# built from them (proven in Chromium) and served too. Both keep serving until Ctrl+C.
run: venv system-deps
	$(BIN)/mnist-edge pipeline --out $(ARTIFACTS) --serve --host $(HOST) --port $(PORT) --web-port $(WEB_PORT) --site $(SITE)

# The web app: a static site where the model runs in the browser, offline; proven in Chromium.
web: venv system-deps
	$(BIN)/mnist-edge web $(ARTIFACTS) --out $(SITE)

serve-web: venv system-deps
	$(BIN)/mnist-edge web $(ARTIFACTS) --out $(SITE) --serve --host $(HOST) --port $(WEB_PORT)

test: venv system-deps
	$(BIN)/python -m pytest

# A venv with the runtime only (`pip install .`), for the install-footprint and cold-start figures.
runtime-venv:
	test -x .venv-runtime/bin/python || $(PYTHON) -m venv .venv-runtime
	.venv-runtime/bin/python -m pip install --quiet .

bench: pipeline runtime-venv
	$(BIN)/mnist-edge bench --model $(ARTIFACTS) --runtime-venv .venv-runtime --train-venv $(VENV)

# The MLP trained three ways (no dropout/augmentation, dropout, both): what each does to overfitting.
experiment: venv
	$(BIN)/mnist-edge experiment overfitting --out $(ARTIFACTS)/experiments/overfitting

# MLP vs CNN side by side (the pipeline writes it too): $(ARTIFACTS)/compare.md, with bench.json's latency if there.
compare: pipeline
	$(BIN)/mnist-edge compare $(ARTIFACTS)/mlp $(ARTIFACTS)/cnn --out $(ARTIFACTS)

# The microcontroller artifact of each model: flash, arena, MACs, TFLite Micro vs LiteRT latency
# on the same flatbuffer, and the Cortex-M4 estimate (docs/microcontrollers.md).
bench-micro: pipeline
	$(BIN)/python bench/micro.py --model $(ARTIFACTS) --out bench-artifacts/micro.md

# Every recipe (mlp, cnn, cnn --recipe fast) and the keras.io convnet (the yardstick) from scratch with
# 5 seeds each: mean ± sd, min, max, time as a multiple of the yardstick's. ACCURACY_ARGS: --seeds 3
# (or 42,43), --models cnn,cnn/fast, --previous (the previous CNN too), --resume, --record.
bench-accuracy: venv
	$(BIN)/python bench/accuracy.py --out bench-artifacts $(ACCURACY_ARGS)

# How the trained CNN reads styles it never trained on (other pens, slants, photos, scans, print,
# seven-segment), through the runtime's preprocessing, next to its MNIST figure. GENERALISATION_ARGS:
# --model other/cnn (another column), --per-style N.
bench-generalisation: venv system-deps
	$(BIN)/python bench/generalisation.py --model $(ARTIFACTS)/cnn --out bench-artifacts/generalisation $(GENERALISATION_ARGS)

# make run on a fresh clone of HEAD (reusing this venv's packages): seconds to the first prediction served.
bench-first-prediction: venv
	$(BIN)/python bench/first_prediction.py --out bench-artifacts/first_prediction.md

# The your-own-handwriting loop on a new writer (seven-segment digits): evaluate, fine-tune, export, verify.
bench-handwriting: pipeline system-deps
	$(BIN)/python bench/handwriting.py --model $(ARTIFACTS)/cnn --out bench-artifacts/handwriting

# Whole numbers: `read` (digit by digit, and with the number reader) and Tesseract 5 side by side on
# 1,000 seeded fields of MNIST test digits; a 1200x300 photo read by the Python runtime and by the web
# app in headless Chromium; then the same fields built from digits in nine styles that are not MNIST's.
bench-read: pipeline system-deps
	nice -n 19 $(BIN)/python bench/read.py --model $(ARTIFACTS)/cnn/export --out bench-artifacts
	nice -n 19 $(BIN)/python bench/read_styles.py --model $(ARTIFACTS)/cnn/export --out bench-artifacts

# First-visit transfer size, load-to-first-prediction time and per-drawing latency of the web app.
bench-web: venv system-deps
	$(BIN)/python bench/web.py --artifacts $(ARTIFACTS) --out bench-artifacts

# `mnist-edge batch` on a local Ray against `predict --jobs 2`: images/s, CPU seconds, Ray's start-up apart.
bench-batch: pipeline
	$(BIN)/python bench/batch.py --model $(ARTIFACTS)/cnn --out bench-artifacts/batch

clean:
	rm -rf $(ARTIFACTS) bench-artifacts test-artifacts .pytest_cache $(SITE)
