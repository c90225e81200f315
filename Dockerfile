# syntax=docker/dockerfile:1
# Multi-stage build of the agentic-operator image.
#   docker build -t agentic-operator:latest .      (or: podman build ...)
# The builder turns the source tree into a wheel and installs it, with its runtime dependencies only,
# into a virtualenv; the final stage copies just that virtualenv (no compilers, no dev extras).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python3 -m venv /opt/venv
# Metadata first, then the package: changes under src/ do not invalidate the venv layer's base.
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install /wheels/*.whl

FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
# UID 1001 in group 0, so the image also runs under OpenShift's arbitrary-UID policy.
RUN useradd --uid 1001 --gid 0 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin operator
# Same base image in both stages, so the venv's interpreter symlinks stay valid.
COPY --from=builder /opt/venv /opt/venv
# The platform's scheduled-session CronJobs run `./operator session-trigger` in this image, a path
# relative to the working directory, with no flags: /app/operator is the same console script.
WORKDIR /app
RUN ln -s /opt/venv/bin/agentic-operator /app/operator
USER 1001
# 8080: Prometheus /metrics; 8081: /healthz and /readyz.
EXPOSE 8080 8081
ENTRYPOINT ["agentic-operator"]
