# syntax=docker/dockerfile:1
#
# dbcert container image.
#
# No Docker engine runs in this project's CI, so this file is kept correct by construction:
# the builder runs the same cargo commands as `.ci/run` (`--locked`, the committed Cargo.lock,
# the pinned toolchain of Cargo.toml's rust-version), nothing here needs protoc (protox compiles
# the protos in build.rs), and tests/integration/dockerfile.rs checks the invariants below
# (toolchain pin, exposed ports = the listen addresses, volume = the data dir, the healthcheck
# command).

ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# The unit tests need no services; run them as CI does, then build the release binary.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo test --locked --lib \
    && cargo build --locked --release --bin dbcert \
    && cp target/release/dbcert /usr/local/bin/dbcert
RUN dbcert --version

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/dbcert --shell /usr/sbin/nologin dbcert \
    && mkdir -p /var/lib/dbcert \
    && chown dbcert:dbcert /var/lib/dbcert \
    && chmod 0700 /var/lib/dbcert
COPY --from=builder /usr/local/bin/dbcert /usr/local/bin/dbcert
USER 10001:10001
ENV DBCERT_DATA_DIR=/var/lib/dbcert \
    DBCERT_GRPC_LISTEN=0.0.0.0:50051 \
    DBCERT_HTTP_LISTEN=0.0.0.0:8080 \
    DBCERT_LOG_FORMAT=json
VOLUME ["/var/lib/dbcert"]
EXPOSE 50051 8080
# Asks the gRPC health service on the loopback of DBCERT_GRPC_LISTEN's port. It reads the
# server's own environment: with DBCERT_TLS_CERT_FILE set (TLS on), it speaks TLS and trusts
# exactly that certificate. Under required mutual TLS, also set
# DBCERT_HEALTHCHECK_CLIENT_CERT_FILE / DBCERT_HEALTHCHECK_CLIENT_KEY_FILE (a certificate the
# client CA signed). Configure TLS through these variables, not serve's flags, so the check
# sees it.
HEALTHCHECK --interval=10s --timeout=6s --start-period=15s --retries=3 CMD ["dbcert", "healthcheck"]
ENTRYPOINT ["dbcert"]
CMD ["serve"]
