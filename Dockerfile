# inferd, CPU image: python:3.11-slim, a virtualenv built in a first stage, run as a non-root
# user on a read-only root filesystem. docs/deploy.md has the build and run commands.
#
#   docker build -t inferd:0.1.0 .
#   docker run --read-only --tmpfs /tmp -v inferd-home:/var/lib/inferd -p 8000:8000 -p 8001:8001 inferd:0.1.0

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# Optional extras baked in (pyproject.toml): ONNX for the built-in examples, PostgreSQL for a
# shared registry, S3 for artifacts. Add sklearn, xgboost, lightgbm, torch... as needed.
ARG EXTRAS=onnx,postgres,s3
WORKDIR /src
# Dependencies resolve from pyproject.toml alone; the source follows.
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/inferd \
    && /opt/inferd/bin/pip install --no-cache-dir ".[${EXTRAS}]" \
    && /opt/inferd/bin/python -m compileall -q /opt/inferd

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="inferd" \
      org.opencontainers.image.description="Model serving: V2 REST and gRPC, registry, batching" \
      org.opencontainers.image.licenses="Apache-2.0"
# One fixed uid/gid (10001) that the Kubernetes manifests (deploy/k8s) name too.
RUN groupadd --system --gid 10001 inferd \
    && useradd --system --uid 10001 --gid inferd --no-create-home \
       --home-dir /var/lib/inferd --shell /usr/sbin/nologin inferd \
    && mkdir -p /var/lib/inferd /models \
    && chown inferd:inferd /var/lib/inferd /models
COPY --from=build /opt/inferd /opt/inferd
# Bytecode was compiled at build time: nothing writes next to the code on a read-only root.
ENV PATH="/opt/inferd/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    INFERD_HOME=/var/lib/inferd \
    INFERD_HOST=0.0.0.0
# INFERD_HOME (registry, examples, artifacts) and a model repository are the writable and
# mounted parts; everything else may be read-only (with a tmpfs on /tmp).
VOLUME ["/var/lib/inferd", "/models"]
USER 10001:10001
WORKDIR /var/lib/inferd
EXPOSE 8000 8001
# Ready = start-up load done and not shutting down (GET /v2/health/ready); stdlib only.
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/v2/health/ready' % os.environ.get('INFERD_HTTP_PORT', '8000'), timeout=2)"]
# Exec form: inferd is PID 1 and receives SIGTERM itself, then drains for
# INFERD_GRACEFUL_TIMEOUT_S (default 30 s): give `docker stop` a longer --time.
STOPSIGNAL SIGTERM
ENTRYPOINT ["inferd"]
CMD ["serve"]
