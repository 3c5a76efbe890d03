# pgrw, the PostgreSQL read/write-splitting proxy, as a small image that runs
# as an unprivileged user: `docker build -t pgrw .` at the repository root,
# then mount a pgrw.toml at /etc/pgrw/pgrw.toml (deploy/docker-compose.yaml
# does). Not built on pgrw's development machines (no Docker engine there):
# crates/pgrw-cli/tests/deploy_files.rs checks what it says.

# Build: the whole workspace is copied, only the `pgrw` binary is built
# (the oracle crate, which needs libclang, is not a dependency of it).
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p pgrw-cli \
    && strip target/release/pgrw

# Run: Debian slim (glibc, as the binary was linked against), no compiler,
# no shell tools beyond the base, and a user of its own.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --no-create-home \
        --shell /usr/sbin/nologin pgrw \
    && mkdir -p /etc/pgrw
COPY --from=builder /src/target/release/pgrw /usr/local/bin/pgrw
USER 10001:10001
EXPOSE 6432
# SIGTERM drains (shutdown_timeout_ms); a second one stops at once.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/pgrw"]
CMD ["proxy", "--config", "/etc/pgrw/pgrw.toml"]
