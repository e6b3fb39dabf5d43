# Multi-stage build: compile with the Rust toolchain, run from a slim Debian image as non-root.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home rabbitmq-watch
COPY --from=build /src/target/release/rabbitmq-watch /usr/local/bin/rabbitmq-watch
USER 10001
EXPOSE 9419
# Configure with a mounted file (--config /etc/rabbitmq-watch/config.yaml) and/or
# RABBITMQ_WATCH__SECTION__KEY environment variables.
ENTRYPOINT ["/usr/local/bin/rabbitmq-watch"]
