# syntax=docker/dockerfile:1
# A static (musl) operator binary on distroless, running as non-root.
# Base images are pinned to exact releases; pin them by digest too in your
# release pipeline (digests cannot be resolved where this file was written).

FROM docker.io/library/rust:1.95.0-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools make \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
# Dependencies first, so a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
 && cargo build --release --locked --target x86_64-unknown-linux-musl \
 && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --target x86_64-unknown-linux-musl --bin securetunnel-operator \
 && strip target/x86_64-unknown-linux-musl/release/securetunnel-operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/securetunnel-operator /securetunnel-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/securetunnel-operator"]
CMD ["run"]
