# siobridge image: the sidecar binary with the socket.io-client bundle embedded.
#   docker build -t siobridge .
#   docker run -p 7896:7896 -v $PWD/config.toml:/etc/siobridge/config.toml siobridge
# In a container the API must listen beyond loopback (api.listen = "0.0.0.0:7897"), which
# siobridge allows only with an api.token of at least 32 characters (openssl rand -hex 32).
# The build stages run the same scripts as `make build`: proxy/clientdist/update.sh, then
# `make binary`.

# 1. The client bundle, from the npm lock file the tests use.
FROM node:20-bookworm-slim AS bundle
WORKDIR /src
COPY socketio/testdata/interop/package.json socketio/testdata/interop/package-lock.json socketio/testdata/interop/.npmrc socketio/testdata/interop/
COPY proxy/clientdist/ proxy/clientdist/
RUN bash proxy/clientdist/update.sh

# 2. The binary.
FROM golang:1.26-bookworm AS build
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
EXPOSE 7896 7897
ENTRYPOINT ["/usr/local/bin/siobridge"]
CMD ["-config", "/etc/siobridge/config.toml"]
