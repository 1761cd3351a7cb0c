# syntax=docker/dockerfile:1
#
# idsync container image: a static binary on distroless, running as a non-root user.
#
#   docker build -t idsync .
#   docker run -d --name idsync \
#     -v idsync-state:/var/lib/idsync \
#     -v /srv/idsync/config.yaml:/etc/idsync/config.yaml:ro \
#     -v /srv/idsync/secrets:/run/secrets/idsync:ro \
#     -p 9464:9464 idsync
#
# In config.yaml set `state_path: /var/lib/idsync/idsync.db` (the state must live on
# the volume, or every restart starts from an empty snapshot) and point the `*_file`
# secrets at the mounted files, e.g. /run/secrets/idsync/haplo-user-api-key.
#
# Listening: idsync's default `listen` is 127.0.0.1:9464, which is unreachable from
# outside the container. The default CMD below therefore passes
# `--listen 0.0.0.0:9464` so that Prometheus can scrape /metrics and the orchestrator
# can probe /healthz and /readyz. Arguments given to `docker run` replace CMD, so add
# `--listen 0.0.0.0:9464` yourself when you pass others, e.g.
#   docker run ... idsync --listen 0.0.0.0:9464 --log-format json
# A one-shot run (`docker run --rm ... idsync --once`) needs no listener.
#
# Stopping: `docker stop` sends SIGTERM; operations in flight finish within
# `drain_timeout` (default 30s), so give it more time: `docker stop -t 45`
# (or `stop_grace_period: 45s` in compose, terminationGracePeriodSeconds in Kubernetes).

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go build -trimpath -ldflags="-s -w" -o /idsync ./cmd/idsync \
 && mkdir -p /out/var/lib/idsync /out/etc/idsync

FROM gcr.io/distroless/static-debian12:nonroot
# distroless/static provides CA certificates, tzdata and the user nonroot (65532).
COPY --from=build /idsync /usr/local/bin/idsync
COPY --from=build --chown=65532:65532 /out/var/lib/idsync /var/lib/idsync
COPY --from=build /out/etc/idsync /etc/idsync
USER 65532:65532
WORKDIR /var/lib/idsync
VOLUME /var/lib/idsync
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/idsync", "--config", "/etc/idsync/config.yaml"]
CMD ["--listen", "0.0.0.0:9464"]
