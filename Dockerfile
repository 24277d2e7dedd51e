# Promoter: a release build, then the binary alone on a slim Debian image.
#   docker build -t promoter .
#   docker run -p 8624:8624 -v promoter-data:/var/lib/promoter promoter
# Arguments replace the command, so settings as flags come after `serve`
# (`docker run … promoter serve --rate-limit-per-key 10`), or as PROMOTER_…
# variables (`-e`).
# Base images are pinned to exact versions: bump them on purpose (and pin their
# digests too if you mirror them into your own registry).

FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
# The dependencies first, in a layer that only a change to Cargo.toml or
# Cargo.lock rebuilds: the manifest, with placeholder sources for its targets.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
COPY migrations ./migrations
# Newer than the placeholders, so that cargo rebuilds the crate itself.
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

FROM debian:12.11-slim
RUN useradd --system --uid 10001 --home /var/lib/promoter --create-home promoter \
    && install -d -o promoter -g promoter /var/lib/promoter/promoter-data
COPY --from=build /src/target/release/promoter /usr/local/bin/promoter
USER promoter
WORKDIR /var/lib/promoter
# The embedded SQLite database (promoter.db) lives here unless
# PROMOTER_DATABASE_URL names a PostgreSQL server, and package files in
# promoter-data/ unless PROMOTER_STORAGE_URL names an object store: mount a
# volume on them (a new named volume takes the folder's owner from the image).
# Configuration comes only from the environment: see docs/operations.md, Configuration.
ENV PROMOTER_LISTEN=0.0.0.0:8624
EXPOSE 8624
# The binary checks itself: the slim image has no curl.
HEALTHCHECK --interval=10s --timeout=6s --start-period=10s --retries=3 \
    CMD ["promoter", "health"]
ENTRYPOINT ["promoter"]
CMD ["serve"]
