# cutover-proxy: a small, non-root image. Build: docker build -t cutover-proxy .
# Stage 1 compiles with the official Rust image; stage 2 carries only the binary.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# Dependencies first, with placeholder sources: this layer is rebuilt only when Cargo.toml or
# Cargo.lock change, not on every source edit.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/per_request.rs \
    && cargo build --release --locked --bin cutover-proxy \
    && rm -rf src benches
COPY src ./src
COPY benches ./benches
# Newer mtimes than the placeholders, so cargo rebuilds the crate itself.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin cutover-proxy \
    && strip target/release/cutover-proxy

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 65532 cutover \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin cutover \
    && mkdir -p /var/lib/cutover \
    && chown 65532:65532 /var/lib/cutover
COPY --from=build /src/target/release/cutover-proxy /usr/local/bin/cutover-proxy
USER 65532:65532
# 8080: client traffic (--listen); 9901: admin — /healthz, /readyz, /, /metrics, /report (--admin-listen).
EXPOSE 8080 9901
ENTRYPOINT ["/usr/local/bin/cutover-proxy"]
CMD ["serve", "--help"]
