# rabbitmq-watch container image.
#
#   docker build -t rabbitmq-watch .
#   docker run -p 9419:9419 -e RABBITMQ_WATCH__RABBITMQ__URL=http://rabbitmq:15672 \
#     -e RABBITMQ_WATCH__RABBITMQ__USERNAME=watcher \
#     -e RABBITMQ_WATCH__RABBITMQ__PASSWORD_FILE=/run/secrets/rabbitmq-watcher \
#     -v ./rabbitmq-watch.yaml:/etc/rabbitmq-watch/config.yaml:ro \
#     -e RABBITMQ_WATCH_CONFIG=/etc/rabbitmq-watch/config.yaml rabbitmq-watch
#
# Stage 1 builds the release binary; stage 2 is distroless (glibc, CA certificates, no shell,
# no package manager) and runs it as the non-root user 65532.

FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so that a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src
COPY src ./src
# touch: the placeholder's build is older than the real sources.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && cp target/release/rabbitmq-watch /rabbitmq-watch \
 && mkdir -p /state

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /rabbitmq-watch /usr/local/bin/rabbitmq-watch
# A directory the non-root user may write, for notify.state_file (mount a volume here).
COPY --from=build --chown=65532:65532 /state /var/lib/rabbitmq-watch
USER 65532:65532
# glibc's allocator: two arenas instead of up to 8 per core, and blocks of 128 KiB or more
# mapped on their own and returned when freed (a fixed threshold: glibc's default raises it to
# the largest block freed, which kept each poll's queue list in the arenas). 144 -> 74 MB RSS at
# 10,000 queues (docs/operations.md, "Memory and the allocator"; bench/SCALE.md).
ENV MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072
EXPOSE 9419
# Configuration: a mounted file (RABBITMQ_WATCH_CONFIG or --config) and/or
# RABBITMQ_WATCH__SECTION__KEY variables; set notify.state_file to a mounted volume to keep
# alert state across restarts. `listen` defaults to 0.0.0.0:9419.
# `probe` GETs /-/ready at the configured listen address: healthy once a poll of every
# management endpoint succeeded recently (use `probe --url http://127.0.0.1:9419/-/healthy`
# for "the process serves" only). No shell or curl needed. It follows the web configuration
# (web.config_file: https when TLS is on); with basic_auth_users set, give it credentials:
# RABBITMQ_WATCH_PROBE_USERNAME and RABBITMQ_WATCH_PROBE_PASSWORD_FILE (a mounted secret).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/rabbitmq-watch", "probe", "--timeout", "4s"]
ENTRYPOINT ["/usr/local/bin/rabbitmq-watch"]
CMD ["run"]
