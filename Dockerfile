# syntax=docker/dockerfile:1
# One image for every ttc service: api, worker, beat, flower, sim and the migration Job.
#
# The base is pinned by an exact tag (CPython 3.11.13 on Debian 12 "bookworm"), not by
# digest: this file was written where no container registry can be reached to read one.
# To pin the digest: `docker buildx imagetools inspect python:3.11.13-slim-bookworm`, then
# build with --build-arg PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:<digest>.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---- build: a virtualenv with ttc and its dependencies -----------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/ttc
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY migrations migrations
COPY ttc_core ttc_core
COPY ttc_worker ttc_worker
COPY ttc_api ttc_api
COPY ttc_sim ttc_sim
COPY ttc_cli ttc_cli
# Editable install: `ttc migrate` reads alembic.ini and migrations/ next to the package.
# Bytecode compiled now, because the root filesystem is read-only at run time.
RUN /opt/ttc/bin/pip install -e . \
    && /opt/ttc/bin/python -m compileall -q /app /opt/ttc/lib

# ---- runtime ------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# bubblewrap: the code verifier's sandbox (it needs unprivileged user namespaces; see
# deploy/k8s/README.md). tini: PID 1 that forwards signals and reaps sandboxed children.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        bubblewrap=0.8.0-2+deb12u1 \
        tini=0.19.0-1+b3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /tmp ttc
COPY --from=build /opt/ttc /opt/ttc
COPY --from=build /app /app
WORKDIR /app
ENV PATH=/opt/ttc/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    TTC_LOG_FORMAT=json \
    TTC_HEALTHCHECK_URL=http://127.0.0.1:8000/health
USER 10001:10001
EXPOSE 8000 9808 5555 8100
# The API answers /health; a worker's metrics server (9808) and Flower's /healthcheck
# stand in for the others (compose and the Kubernetes probes set the URL per service).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['TTC_HEALTHCHECK_URL'], timeout=4)"]
ENTRYPOINT ["tini", "--"]
CMD ["ttc", "serve", "--host", "0.0.0.0", "--port", "8000"]
