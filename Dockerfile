# modelpress images, one file, one target per image:
#
#   docker build --target serve       -t modelpress-serve:0.1.0 .        CPU server (onnxruntime, no torch)
#   docker build --target serve-baked -t modelpress-serve-baked:0.1.0 \
#                --build-arg MODEL_REPOSITORY=model-repository .         the same, with a model repository baked in
#   docker build --target serve-gpu   -t modelpress-serve-gpu:0.1.0 .    CUDA server (onnxruntime-gpu, CUDA required)
#   docker build --target pipeline    -t modelpress-pipeline:0.1.0 .     training + export (torch CPU), for a K8s Job
#
# Every image runs as the numeric non-root user 10001 so Kubernetes' runAsNonRoot can verify it.
# Each image installs the package's extras (serve: [serve,grpc,s3], serve-gpu: [gpu,grpc,s3], pipeline:
# [export,serve,hf,postgres,s3]) at the versions of one lock, constraints/images.txt (`make lock`), so builds repeat
# and export verifies on the release that serves. Dependencies are installed before the source is copied, so editing code does not reinstall them.
# No `# syntax=` line: it makes BuildKit fetch a frontend image from a registry, which breaks air-gapped builds.
# No Docker engine runs in our CI: this file is linted (hadolint) and cross-checked by tests/deploy, not built there.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# onnxruntime-gpu 1.31.1 (constraints/images.txt) is built against CUDA 13 and cuDNN 9.
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04

# ---------------------------------------------------------------------------------------------------------------
# serve-build: a virtualenv holding the CPU server's dependencies, then the serving code. Only the venv leaves.
FROM ${PYTHON_IMAGE} AS serve-build
# PIP_CONSTRAINT also reaches the isolated environment that builds the wheel (its setuptools is locked too).
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 \
    PIP_CONSTRAINT=/src/constraints/images.txt
RUN python -m venv /opt/venv
COPY pyproject.toml README.md /src/
COPY constraints/ /src/constraints/
RUN python /src/constraints/requirements.py /src/pyproject.toml serve grpc s3 >/src/constraints/serve.txt \
    && /opt/venv/bin/pip install -r /src/constraints/serve.txt
# Every package folder (the wheel maps them all under modelpress.*), but only the server's dependencies: training
# and export code is never imported by `modelpress serve`, and torch stays out of the image.
COPY modelpress/ /src/modelpress/
COPY common/ /src/common/
COPY serving/ /src/serving/
COPY training/ /src/training/
COPY export/ /src/export/
COPY benchmarks/ /src/benchmarks/
# pip (and setuptools) leave the venv once modelpress is in: the running server installs nothing.
RUN /opt/venv/bin/pip install --no-deps /src \
    && /opt/venv/bin/python -m pip uninstall --yes --quiet pip setuptools

# ---------------------------------------------------------------------------------------------------------------
# serve: the CPU inference server. Settings come from MODELPRESS_* env vars (modelpress.serving.settings.Settings).
FROM ${PYTHON_IMAGE} AS serve
LABEL org.opencontainers.image.title="modelpress-serve" \
      org.opencontainers.image.description="modelpress inference server: ONNX Runtime (CPU), Open Inference Protocol, Prometheus metrics" \
      org.opencontainers.image.licenses="Apache-2.0"
# The user's HOME exists (ONNX Runtime and Python's caches look there; without it ORT warns at every start).
# /models is root's: the server only reads its repository (serve-baked's models are root's and read-only too).
RUN groupadd --system --gid 10001 modelpress \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/modelpress \
       --shell /usr/sbin/nologin modelpress \
    && mkdir -p /models
COPY --from=serve-build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/home/modelpress \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MODELPRESS_REPOSITORY=/models \
    MODELPRESS_HOST=0.0.0.0 \
    MODELPRESS_PORT=8000
USER 10001:10001
WORKDIR /models
EXPOSE 8000
# Python rather than curl: the slim image has no curl and installing it only for this adds attack surface.
# urlopen raises (exit 1) on a refused connection or any non-2xx answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/v2/health/live' % os.environ.get('MODELPRESS_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["modelpress", "serve"]

# ---------------------------------------------------------------------------------------------------------------
# serve-baked: `serve` plus a model repository in its own (last) layer. MODEL_REPOSITORY is a folder of the
# build context laid out as <model>/<version>/model.onnx + manifest.json. .dockerignore admits only
# `model-repository/` for this, so copy the repository you want to ship there first (see docs/deploy.md).
# The models are root's and read-only (files 0444, folders 0555): the server reads them, nothing may change them.
# The modes are set in a stage of their own, so the image holds the repository in one layer, not twice.
FROM ${PYTHON_IMAGE} AS baked-models
ARG MODEL_REPOSITORY=model-repository
COPY ${MODEL_REPOSITORY}/ /models/
RUN chown -R 0:0 /models && chmod -R a=rX /models

FROM serve AS serve-baked
COPY --from=baked-models /models/ /models/

# ---------------------------------------------------------------------------------------------------------------
# serve-gpu-build: the same virtualenv with onnxruntime-gpu and NVML bindings, on the CUDA base's Python.
FROM ${CUDA_IMAGE} AS serve-gpu-build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 DEBIAN_FRONTEND=noninteractive
# Ubuntu's python3 tracks the base image's release; exact apt pins would break at every security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv
ENV PIP_CONSTRAINT=/src/constraints/images.txt
COPY pyproject.toml README.md /src/
COPY constraints/ /src/constraints/
RUN python3 /src/constraints/requirements.py /src/pyproject.toml gpu grpc s3 >/src/constraints/serve-gpu.txt \
    && /opt/venv/bin/pip install -r /src/constraints/serve-gpu.txt
COPY modelpress/ /src/modelpress/
COPY common/ /src/common/
COPY serving/ /src/serving/
COPY training/ /src/training/
COPY export/ /src/export/
COPY benchmarks/ /src/benchmarks/
RUN /opt/venv/bin/pip install --no-deps /src \
    && /opt/venv/bin/python -m pip uninstall --yes --quiet pip setuptools

# ---------------------------------------------------------------------------------------------------------------
# serve-gpu: CUDA 13 + cuDNN 9 runtime, onnxruntime-gpu. CUDA is required: with MODELPRESS_REQUIRE_GPU=true the
# server fails at start instead of silently falling back to CPU (onnxruntime-gpu lists CUDA as available even
# where no GPU is present).
FROM ${CUDA_IMAGE} AS serve-gpu
LABEL org.opencontainers.image.title="modelpress-serve-gpu" \
      org.opencontainers.image.description="modelpress inference server: ONNX Runtime (CUDA), Open Inference Protocol, Prometheus metrics" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV DEBIAN_FRONTEND=noninteractive
# Same reason as above for not pinning Ubuntu's python3; the venv below links to this interpreter.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 modelpress \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/modelpress \
       --shell /usr/sbin/nologin modelpress \
    && mkdir -p /models
COPY --from=serve-gpu-build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/home/modelpress \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MODELPRESS_REPOSITORY=/models \
    MODELPRESS_HOST=0.0.0.0 \
    MODELPRESS_PORT=8000 \
    MODELPRESS_PROVIDERS=CUDAExecutionProvider,CPUExecutionProvider \
    MODELPRESS_REQUIRE_GPU=true
USER 10001:10001
WORKDIR /models
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/v2/health/live' % os.environ.get('MODELPRESS_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["modelpress", "serve"]

# ---------------------------------------------------------------------------------------------------------------
# pipeline: torch (CPU build) and every stage, to train and export inside a Kubernetes Job (k8s/pipeline).
FROM ${PYTHON_IMAGE} AS pipeline
# torch's CPU build (the lock pins torch==<version>+cpu, found only there): PyPI's Linux torch bundles CUDA and is
# several GB larger. Every other package comes from PyPI at the lock's version.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PIP_CONSTRAINT=/src/constraints/images.txt
RUN groupadd --system --gid 10001 modelpress \
    && useradd --system --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin modelpress \
    && python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The project's own dependency list with the runtime the serve image has, installed before the source lands.
COPY pyproject.toml README.md /src/
COPY constraints/ /src/constraints/
RUN python /src/constraints/requirements.py /src/pyproject.toml export serve hf postgres s3 >/src/constraints/pipeline.txt \
    && pip install --extra-index-url "${TORCH_INDEX_URL}" -r /src/constraints/pipeline.txt
COPY common/ /src/common/
COPY modelpress/ /src/modelpress/
COPY serving/ /src/serving/
COPY training/ /src/training/
COPY export/ /src/export/
COPY benchmarks/ /src/benchmarks/
COPY recipes/ /src/recipes/
RUN pip install --no-deps /src
USER 10001:10001
# Recipes resolve relative to the source tree (`--recipe recipes/digits.yaml`); outputs go to mounted volumes.
WORKDIR /src
ENTRYPOINT ["modelpress"]
CMD ["--help"]
