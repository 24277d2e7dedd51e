# Build a release binary, then run it on a slim Debian image.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/promoter --create-home promoter
COPY --from=build /src/target/release/promoter /usr/local/bin/promoter
USER promoter
WORKDIR /var/lib/promoter
ENV PROMOTER_LISTEN=0.0.0.0:8624
EXPOSE 8624
ENTRYPOINT ["promoter"]
CMD ["serve"]
