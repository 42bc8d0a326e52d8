# siobridge image: the sidecar binary with the socket.io-client bundle embedded.
#
#   docker build -t siobridge .
#
# Configured by SIOBRIDGE_* variables alone (docs/configuration.md):
#
#   docker run -p 7896:7896 -p 7897:7897 \
#     -e SIOBRIDGE_SERVER_UPSTREAM=http://app:3000 \
#     -e SIOBRIDGE_WEBHOOK_URL=http://app:3000/siobridge -e SIOBRIDGE_WEBHOOK_SECRET=... \
#     -e SIOBRIDGE_API_LISTEN=0.0.0.0:7897 -e SIOBRIDGE_API_TOKEN=$(openssl rand -hex 32) \
#     siobridge
#
# or by a config file mounted at /etc/siobridge/config.toml, which siobridge reads when it
# exists (the variables override it):
#
#   docker run -p 7896:7896 -v $PWD/config.toml:/etc/siobridge/config.toml:ro siobridge
#
# In a container the API must listen beyond loopback (api.listen = "0.0.0.0:7897"), which
# siobridge allows only with an api.token of at least 32 characters (openssl rand -hex 32).
# The webhook spool belongs in the volume /var/lib/siobridge:
# SIOBRIDGE_WEBHOOK_SPOOL_DIR=/var/lib/siobridge/spool.
# The HEALTHCHECK runs `siobridge -healthcheck`, which reads the same variables and file and
# asks the API's /healthz (the image has no curl); arguments given to `docker run` after the
# image name reach siobridge but not the health check, so set the config file's path with
# SIOBRIDGE_CONFIG rather than -config.
#
# The build stages run the same scripts as `make build`: proxy/clientdist/update.sh, then
# `make binary`.

# 1. The client bundle, from its npm lock file (proxy/clientdist-npm; the interop tests pin the
#    same version), on a maintained Node.js LTS.
FROM node:24-bookworm-slim AS bundle
WORKDIR /src
COPY proxy/clientdist-npm/ proxy/clientdist-npm/
COPY proxy/clientdist/ proxy/clientdist/
RUN bash proxy/clientdist/update.sh

# 2. The binary, with the Go release of go.mod's go line.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
COPY --from=bundle /src/proxy/clientdist/ proxy/clientdist/
ARG VERSION=dev
RUN make binary VERSION=${VERSION}

# 3. A small final image, run as a non-root user.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home siobridge \
    && install -d -o siobridge -g siobridge -m 0700 /var/lib/siobridge
COPY --from=build /src/bin/siobridge /usr/local/bin/siobridge
USER siobridge
# The webhook spool (webhook.spool_dir = "/var/lib/siobridge/spool"): a new named volume
# takes the directory's owner, the siobridge user.
VOLUME /var/lib/siobridge
EXPOSE 7896 7897
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/siobridge", "-healthcheck"]
ENTRYPOINT ["/usr/local/bin/siobridge"]
