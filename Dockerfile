# syntax=docker/dockerfile:1
# One image for the three services (tagger, scorer, router); the command picks the service:
#   docker build -t tagrouter:0.1.0 .
#   kubernetes: command ["python", "-m", "services.tagger"]  (or scorer, router)
# Stages: `deps` builds the serving wheels, `export` builds the int8 ONNX model with optimum and
# torch, `runtime` carries the interpreter, the serving packages, the code and the model only.
# The base image is pinned to an exact patch tag; add its digest (@sha256:...) where the build
# runs with registry access, and bump both together.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- serving dependencies, built once into a virtualenv copied whole into the runtime ----------
FROM ${PYTHON_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY pyproject.toml /src/pyproject.toml
# The main `dependencies` of pyproject.toml only: no torch, no compiler in the runtime image.
# opentelemetry-proto goes in again last: xds-protos carries an older copy of its files (Makefile).
RUN /opt/venv/bin/python -c "import tomllib; print('\\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --only-binary=:all: -r /tmp/requirements.txt \
 && /opt/venv/bin/pip install --no-deps --force-reinstall --only-binary=:all: "$(grep '^opentelemetry-proto==' /tmp/requirements.txt)" \
 && /opt/venv/bin/python -c "from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope"

# --- model export: torch (CPU) and optimum, build time only ------------------------------------
FROM ${PYTHON_IMAGE} AS export
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1
WORKDIR /src
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml ./
COPY tagrouter ./tagrouter
COPY services ./services
# Every package of the `export` extra is pinned in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install '.[export]'
RUN python -m tagrouter.dev.export_model --out /model \
 && test -s /model/model.onnx && test -s /model/tokenizer.json

# --- runtime: onnxruntime, tokenizers, grpcio, redis and the model; non-root; no torch ---------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TAGROUTER_HOST=[::] \
    TAGROUTER_MODEL_DIR=/app/model
RUN groupadd --system --gid 10001 tagrouter \
 && useradd --system --uid 10001 --gid tagrouter --home-dir /app --shell /usr/sbin/nologin tagrouter
COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
# Serving code only: the core, the package data, the generated stubs and the services; no offline
# code, no bench, no CLI, no developer tools (docs/ARCHITECTURE.md).
COPY --chown=root:root tagrouter/__init__.py ./tagrouter/__init__.py
COPY --chown=root:root tagrouter/core ./tagrouter/core
COPY --chown=root:root tagrouter/data ./tagrouter/data
COPY --chown=root:root tagrouter/tagger ./tagrouter/tagger
COPY --chown=root:root tagrouter/scorer ./tagrouter/scorer
COPY --chown=root:root tagrouter/router ./tagrouter/router
COPY --chown=root:root services ./services
COPY --from=export --chown=root:root /model ./model
# Bytecode compiled at build time: the root filesystem is read-only when serving.
RUN python -m compileall -q /app/tagrouter /app/services \
 && python -c "import onnxruntime, tokenizers, grpc, redis; import services.tagger.app, services.scorer.app, services.router.app" \
 && python -c "import services.router.app, services.scorer.app, sys; assert 'onnxruntime' not in sys.modules" \
 && ! python -c "import tagrouter.offline" 2>/dev/null \
 && ! python -c "import torch" 2>/dev/null
USER 10001:10001
# gRPC ports: router 50051 (and its Envoy external processor 50054), scorer 50052, tagger 50053;
# metrics 9090 (see services/common/settings.py).
EXPOSE 50051 50052 50053 50054 9090
ENTRYPOINT ["python", "-m"]
CMD ["services.router"]
