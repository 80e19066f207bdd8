# syntax=docker/dockerfile:1
# One image for every Zentry process; the command picks which one:
#   python -m services.user|sleep|feed|leaderboard|analytics
#       a service (ZENTRY_ROLE=api|consumer|all)
#   python -m gateway seed-endpoints, then python -m gateway feed --endpoints-only
#       the gateway's empty endpoint files, then its Consul -> Envoy endpoint feed
# Its code is services/ and gateway/ only: no development tooling (infra/, bench/, chaos/, tests/).
# It also carries Swagger UI's files and the web app's (/app/docs-ui), which the gateway
# pod copies for its Envoy to serve at /docs and /.
# Build from the repository root:  docker build -t zentry:0.1.0 .
# k8s/ runs it; outside Kubernetes, set ZENTRY_ADVERTISE_HOST and the ZENTRY_*_HOST
# variables (README.md), because ZENTRY_HOST is 0.0.0.0 here.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

# --- docs-ui: Swagger UI from npm, at the version infra/toolchain/swagger-ui pins, and
# the web app (web/), built as `make setup` builds it ------------------------------------
FROM ${NODE_IMAGE} AS docs-ui
WORKDIR /ui
COPY infra/toolchain/swagger-ui/ ./
# No install scripts: the only one reports the install to its vendor.
RUN npm ci --no-audit --no-fund --ignore-scripts
WORKDIR /web
COPY web/ ./
RUN npm install --no-audit --no-fund && node build.mjs /web/dist

# --- build: the pinned dependencies and the generated protos -------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
WORKDIR /app
RUN python -m venv /opt/venv
COPY pyproject.toml constraints.txt ./
COPY protos/ protos/
COPY services/ services/
COPY gateway/ gateway/
# Editable, so the code runs from /app (the runtime stage copies both to the same paths).
# No OpenAPI document here: the gateway's ConfigMap carries it (python -m gateway render).
RUN pip install -c constraints.txt -e . \
 && python protos/generate.py --no-openapi \
 && python -m compileall -q services gateway gen/python

# --- runtime: no compilers, no pip cache, not root ------------------------------------
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 zentry \
 && useradd --system --uid 10001 --gid zentry --no-create-home --shell /usr/sbin/nologin zentry
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
COPY --from=docs-ui /ui/node_modules/swagger-ui-dist/swagger-ui-bundle.js \
     /ui/node_modules/swagger-ui-dist/swagger-ui.css \
     /web/dist/index.html /web/dist/app.js /web/dist/app.css /app/docs-ui/
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ZENTRY_HOST=0.0.0.0 \
    ZENTRY_PORT=50051
USER 10001:10001
EXPOSE 50051
# The standard gRPC health service, as Consul and Kubernetes ask it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-m", "services.kit.healthcheck"]
CMD ["python", "-m", "services.user"]
