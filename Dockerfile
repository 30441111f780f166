# Build: docker build -t dingsync/dingsync:0.1.0 .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin dingsync

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/dingsync /usr/local/bin/dingsync
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/dingsync"]
CMD ["controller"]
