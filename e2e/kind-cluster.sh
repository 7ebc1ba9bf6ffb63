#!/usr/bin/env bash
# Creates a kind cluster for the e2e tests and loads the operator image into it.
# Needs kind and a Docker engine; prints why and exits 1 when either is missing.
set -euo pipefail
cluster=${CLUSTER:-securetunnel-e2e}
image=${IMAGE:-ghcr.io/securetunnel-operator/securetunnel-operator:0.1.0}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

command -v kind >/dev/null || { echo "kind is not installed: https://kind.sigs.k8s.io" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "no Docker engine answers: kind needs one" >&2; exit 1; }

kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster" --wait 120s
docker build -t "$image" "$root"
kind load docker-image "$image" --name "$cluster"
echo "export KUBECONFIG=\$(kind get kubeconfig --name $cluster > /tmp/$cluster.kubeconfig; echo /tmp/$cluster.kubeconfig)"
