# syntax=docker/dockerfile:1
#
# exfil-monitor container image.
#
#   docker build -t exfil-monitor:dev .
#   docker run --rm exfil-monitor:dev demo
#   docker run --rm -p 8080:8080 \
#     -v "$PWD/deploy/compose/monitor.yaml:/etc/exfil-monitor/monitor.yaml:ro" \
#     -v "$PWD/deploy/secrets/http-token:/run/secrets/exfil-monitor/http-token:ro" \
#     -e EXFIL_MONITOR_KAFKA__BOOTSTRAP_SERVERS=broker:9092 exfil-monitor:dev
#
# Stage 1 builds wheels for the monitor and every dependency (the full python image has
# a compiler, should a dependency ever come without a wheel) and runs the bundled rule
# pack's own checks and tests, so an image with a broken rule pack is never built.
# Stage 2 is a slim runtime: the wheels installed without network (the monitor's wheel
# carries the rule pack as package data), the rule pack also at /opt/exfil-monitor/rules
# for configs to name, a non-root user, no compiler, no pip cache, and the state
# directory /var/lib/exfil-monitor (state.dir: the daemon's lock, the output spools and
# open episodes) owned by that user and declared a volume.
#
# The daemon's config is not baked in: mount it at /etc/exfil-monitor/monitor.yaml (see
# deploy/compose/monitor.yaml and deploy/kubernetes/configmap.yaml), or give --config.

ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------------------- build
FROM python:${PYTHON_VERSION}-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md setup.py ./
COPY monitor/ monitor/
COPY rules/ rules/
RUN pip wheel --wheel-dir /wheels .

RUN python -m venv /tmp/check \
 && /tmp/check/bin/pip install --no-index --find-links /wheels exfil-monitor \
 && /tmp/check/bin/exfil-monitor check rules/ \
 && /tmp/check/bin/exfil-monitor test rules/

# -------------------------------------------------------------------------- runtime
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="exfil-monitor" \
      org.opencontainers.image.description="Catches customer-data exfiltration in an online shop while it happens: YAML detection rules over Kafka data-access events, alerts to on-call." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:${PYTHON_VERSION}-slim-bookworm"

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# A fixed, numeric, unprivileged user: Kubernetes' runAsNonRoot can verify a number.
RUN groupadd --system --gid 10001 exfil \
 && useradd --system --uid 10001 --gid exfil --home-dir /var/lib/exfil-monitor \
            --no-create-home --shell /usr/sbin/nologin exfil \
 && mkdir -p /etc/exfil-monitor/rules /var/lib/exfil-monitor \
 && chown exfil:exfil /var/lib/exfil-monitor

RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels exfil-monitor \
 && exfil-monitor --version

# The bundled rule pack (with its tests, which the loader skips): `exfil-monitor demo`
# finds it through EXFIL_MONITOR_RULES; a config can name it as rules.path.
COPY rules/ /opt/exfil-monitor/rules/

# HTTP (/metrics /healthz /readyz /rules /alerts) on every interface inside the
# container; the environment overrides the config file's http.listen (127.0.0.1:8080).
# Listening beyond loopback, the endpoints want a bearer token (all but /healthz and
# /readyz): the daemon reads it from a mounted secret at HTTP__AUTH_TOKEN_FILE and
# refuses to start when none is mounted there, rather than serve /alerts to anyone.
ENV EXFIL_MONITOR_RULES=/opt/exfil-monitor/rules \
    EXFIL_MONITOR_HTTP__LISTEN=0.0.0.0:8080 \
    EXFIL_MONITOR_HTTP__AUTH_TOKEN_FILE=/run/secrets/exfil-monitor/http-token \
    EXFIL_MONITOR_STATE__DIR=/var/lib/exfil-monitor

# Declared after the chown above, so a fresh named volume starts owned by the runtime user.
VOLUME ["/var/lib/exfil-monitor"]

USER 10001:10001
WORKDIR /var/lib/exfil-monitor
EXPOSE 8080

# slim has no curl: the interpreter asks /healthz (the event loop answers) on the port
# that EXFIL_MONITOR_HTTP__LISTEN names; any error or non-2xx status exits non-zero.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('EXFIL_MONITOR_HTTP__LISTEN', ':8080').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]

# SIGTERM (docker stop, Kubernetes) stops fetching, finishes the batch in hand, flushes
# the outputs, commits and leaves the consumer group; a second signal exits at once.
STOPSIGNAL SIGTERM
ENTRYPOINT ["exfil-monitor"]
CMD ["run", "--config", "/etc/exfil-monitor/monitor.yaml"]
