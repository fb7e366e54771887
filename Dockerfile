# arbiter container image.
#
#   docker build -t arbiter:local --build-arg ARBITER_COMMIT=$(git rev-parse --short HEAD) .
#   docker compose up            (PostgreSQL + migrations + the service; see docker-compose.yml)
#
# Two stages: the build stage has the compiler and the -dev packages; the
# runtime stage has the three runtime libraries and nothing else (no compiler,
# no curl). Configuration comes only from ARBITER_* environment variables.
# deploy/check.sh checks this file statically (no Docker engine needed).

# ---- build ----
FROM debian:12 AS build
# python3-yaml: openapi/tojson.py turns the contract into the JSON the binary
# serves. deploy/check.sh maps every command of `make -n build` to a package.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential libmicrohttpd-dev libjansson-dev libpq-dev libssl-dev libcurl4-openssl-dev xxd python3-yaml \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole context: .dockerignore keeps it to what the Makefile may read
# (Makefile, include/, src/, sql/, openapi/, deploy/local/, deploy/policy/,
# i18n/). The SQL migrations, the ops page, the message catalogues and the
# contract are compiled into the
# binary, so the runtime stage needs none of these files.
COPY . .
# There is no .git in the build context: the commit comes in as a build arg.
ARG ARBITER_COMMIT=unknown
RUN make build COMMIT="$ARBITER_COMMIT" -j"$(nproc)" && build/arbiter version

# ---- runtime ----
FROM debian:12-slim
# libpq5 brings its own dependencies (libssl3, GSSAPI, LDAP); libssl3 is
# named too, since the checkpoint signatures link libcrypto directly; libcurl4
# sends the webhooks. ca-certificates gives libpq (and the webhooks' TLS
# verification) a CA bundle, e.g. for a publicly signed database certificate:
# ...?sslmode=verify-full&sslrootcert=/etc/ssl/certs/ca-certificates.crt
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libmicrohttpd12 libjansson4 libpq5 libssl3 libcurl4 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 arbiter \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin arbiter
COPY --from=build /src/build/arbiter /usr/local/bin/arbiter
COPY --from=build /src/deploy/policy/default.json /etc/arbiter/policy.json
# 0.0.0.0 inside the container only; the host decides what to publish
# (docker-compose.yml publishes on 127.0.0.1).
ENV ARBITER_LISTEN=0.0.0.0:8080 \
    ARBITER_POLICY=/etc/arbiter/policy.json \
    ARBITER_LOG_LEVEL=info
# Numeric, so Kubernetes' runAsNonRoot can check it without /etc/passwd.
USER 10001:10001
EXPOSE 8080
# SIGTERM drains: /readyz turns 503, in-flight requests get up to 10 s.
STOPSIGNAL SIGTERM
# The probe needs no extra package: bash (Essential in Debian, so present in
# -slim) speaks HTTP/1.0 over /dev/tcp to the port in ARBITER_LISTEN and
# requires a 200 status line. /healthz does not touch the database, so a
# database outage does not mark the container unhealthy (that is /readyz's job).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/bin/bash", "-c", "exec 3<>\"/dev/tcp/127.0.0.1/${ARBITER_LISTEN##*:}\" && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && IFS= read -r -t 2 status <&3 && [[ $status == 'HTTP/1.'?' 200 '* ]]"]
ENTRYPOINT ["arbiter"]
CMD ["serve"]
