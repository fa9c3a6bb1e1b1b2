# The service, installed from uv.lock. No engine runs on the development machine: the file is kept
# simple and standard, and a test checks docker-compose.yml with `docker-compose config`.
#
#   docker compose up --build          # with PostgreSQL (docker-compose.yml)
#   docker build -t lakebase-memory-agent . && docker run -p 8000:8000 -e DATABASE_URL=... lakebase-memory-agent

# Pinned to a patch release and a Debian release, so a rebuild gets the same base; bump on purpose.
ARG PYTHON_VERSION=3.11.14
ARG DEBIAN_RELEASE=bookworm

# -- builder: resolve nothing, install exactly what the lock file says -------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS builder
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
# Then the project itself, installed into the same virtual environment (not editable).
COPY app ./app
RUN uv sync --locked --no-dev --no-editable

# -- runtime: the virtual environment only, as a user without privileges ----------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS runtime
RUN useradd --create-home --uid 10001 agent
COPY --from=builder --chown=agent:agent /src/.venv /src/.venv
ENV PATH=/src/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000
USER agent
WORKDIR /home/agent
EXPOSE 8000
# Liveness: the process answers (/healthz). Not /readyz: during a database outage the service
# answers 503 and recovers by itself, and an orchestrator must not replace it for that.
# Readiness (/readyz, the database answers) is what docker-compose.yml gates on and what a
# Kubernetes readinessProbe should call. python is there, curl is not.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=3)"]
CMD ["lakebase-memory-agent", "serve"]
