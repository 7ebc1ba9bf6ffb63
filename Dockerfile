# The operator's image: one static (musl) binary on an empty base, running as non-root. It
# needs nothing else: it reads its ServiceAccount token and the cluster's CA from the mounted
# files, and writes nothing to disk.
#
# Build the binary, then the image, from the repository's root (no base image is pulled):
#
#   rustup target add x86_64-unknown-linux-musl      # once; and Debian's musl-tools
#   cargo build --release --locked --target x86_64-unknown-linux-musl --bin securetunnel-operator
#   docker build -t securetunnel-operator:0.1.0 .    # or: buildah build -t … .
#
# The e2e suite builds its operator image the same way (e2e/node.sh).
FROM scratch
COPY target/x86_64-unknown-linux-musl/release/securetunnel-operator /securetunnel-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/securetunnel-operator"]
CMD ["run"]
