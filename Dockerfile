# Build: docker build -t dingsync/dingsync:0.1.0 .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin dingsync

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 dingsync \
 && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin dingsync
COPY --from=build /src/target/release/dingsync /usr/local/bin/dingsync
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/dingsync"]
CMD ["controller"]
