# The service, installed from uv.lock. No engine runs on the development machine: the file is kept
# simple and standard, and a test checks docker-compose.yml with `docker-compose config`.
#
#   docker compose up --build          # with PostgreSQL (docker-compose.yml)
#   docker build -t lakebase-memory-agent . && docker run -p 8000:8000 -e DATABASE_URL=... lakebase-memory-agent

ARG PYTHON_VERSION=3.11

# -- builder: resolve nothing, install exactly what the lock file says -------------------------
FROM python:${PYTHON_VERSION}-slim AS builder
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
FROM python:${PYTHON_VERSION}-slim AS runtime
RUN useradd --create-home --uid 10001 agent
COPY --from=builder --chown=agent:agent /src/.venv /src/.venv
ENV PATH=/src/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000
USER agent
WORKDIR /home/agent
EXPOSE 8000
# Ready means the database answers (/readyz); python is there, curl is not.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PORT', '8000'), timeout=3)"]
CMD ["lakebase-memory-agent", "serve"]
