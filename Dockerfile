# syntax=docker/dockerfile:1
# The dingsync image: `docker build -t dingsync/dingsync:0.1.0 .`
# The release binary is built with the official Rust image and runs on Debian slim (the same
# Debian release, so glibc matches) as a numeric non-root user, which the Helm chart's
# `runAsNonRoot` can verify.

FROM rust:1-bookworm AS build
WORKDIR /src
# Cargo.toml declares the benches under tests/, so the whole tree (minus .dockerignore) is
# needed to load the manifest.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin dingsync \
 && cp target/release/dingsync /usr/local/bin/dingsync

FROM debian:bookworm-slim
# CA certificates: DingTalk's HTTPS API and ldaps/HTTPS directories are verified against them.
# Unpinned on purpose: the newest ca-certificates of the pinned Debian release is the right one.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 dingsync \
 && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin dingsync
COPY --from=build /usr/local/bin/dingsync /usr/local/bin/dingsync
LABEL org.opencontainers.image.title="dingsync" \
      org.opencontainers.image.description="Keeps a DingTalk address book and an LDAP or SCIM directory in step, from Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532
# One HTTP port: /metrics, /livez, /readyz, the OIDC login endpoints and the DingTalk callback.
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/dingsync"]
CMD ["controller"]
