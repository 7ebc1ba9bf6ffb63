#!/usr/bin/env bash
# The end-to-end suite (tests/e2e/), against a real control plane:
#
# - the cluster in KUBECONFIG, when that variable is set and the cluster answers
#   (~/.kube/config alone is never used: it may well be a production cluster);
# - otherwise the local one that e2e/cluster.sh builds from the Go module proxy and starts on
#   loopback: once with the operator installed by Helm (every check), then on a fresh control
#   plane installed by kustomize (both with kwok's node only, the operator as a local process),
#   then on a fresh cluster with a real node: the operator installed by Helm from its image,
#   connectors carrying a visitor's requests through a stand-in edge; then the same installed by
#   kustomize (the node phases, which need root).
#
# Then the real cloudflared on what `render` produces, and cyclonus (a NetworkPolicy engine) on
# its sandbox. Under CI (CI=true) nothing skips: a
# control plane that cannot be built or started fails the run. Elsewhere the suite skips,
# saying why, only when neither a cluster nor Go is available, or with SECURETUNNEL_E2E=0.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cluster="$root/e2e/cluster.sh"
# A control plane of the suite's own, apart from the default one a person may have left up.
export E2E_CLUSTER=${E2E_CLUSTER:-e2e-run} E2E_PORT_BASE=${E2E_PORT_BASE:-17000}
ci=${CI:-false}

fail() { echo "e2e: FAILED ($*)"; exit 1; }
skip() {
  [ "$ci" = true ] && fail "cannot skip under CI: $*"
  echo "e2e: SKIPPED ($*)"
  exit 0
}

[ "${SECURETUNNEL_E2E:-1}" = 0 ] && skip "SECURETUNNEL_E2E=0"
command -v kubectl >/dev/null || skip "kubectl is not installed"
command -v curl >/dev/null || skip "curl is not installed"

target=local
if [ "$ci" != true ] && [ -n "${KUBECONFIG:-}" ] && kubectl version --request-timeout=5s >/dev/null 2>&1; then
  target=kubeconfig
fi
if [ $target = local ] && ! command -v go >/dev/null; then
  skip "KUBECONFIG reaches no cluster, and there is no Go toolchain to build the local control plane"
fi
command -v go >/dev/null || skip "Go is needed to build Helm and cloudflared for the suite"

start=$SECONDS
echo "== e2e: building the suite and its tools (the first build of the tools takes a while)"
cargo test --locked --test e2e --no-run 2>&1 | tail -n 1
E2E_HELM="$(bash "$cluster" bin helm)/helm"
E2E_CLOUDFLARED="$(bash "$cluster" bin cloudflared)/cloudflared"
E2E_FAKEEDGE="$(bash "$cluster" bin fakeedge)/fakeedge"
E2E_EXTERNAL_DNS="$(bash "$cluster" bin external-dns)/external-dns"
E2E_DNSENDPOINT_CRD="$(bash "$cluster" src external-dns)/config/crd/standard/dnsendpoints.externaldns.k8s.io.yaml"
E2E_PROMETHEUS_OPERATOR_SRC="$(bash "$cluster" src prometheus-operator)"
E2E_CYCLONUS="$(bash "$cluster" bin cyclonus)/cyclonus"
export E2E_HELM E2E_CLOUDFLARED E2E_FAKEEDGE E2E_EXTERNAL_DNS E2E_DNSENDPOINT_CRD E2E_PROMETHEUS_OPERATOR_SRC E2E_CYCLONUS
if [ $target = local ]; then
  # The real node (its images, the operator's among them) only where the node phases run.
  node=0
  [ "$(id -u)" != 0 ] || node=1
  E2E_NODE=$node bash "$cluster" build
fi
echo "== e2e: tools ready after $((SECONDS - start)) s"

passed=0 failed=0 skipped=0
phase() { # phase NAME: runs one phase of tests/e2e and adds up its counts
  local name=$1 out status=0 t=$SECONDS
  out=$(mktemp)
  cargo test --locked --test e2e -- "$name" 2>&1 | tee "$out" || status=$?
  local counts
  counts=$(sed -n 's/^e2e: \([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped$/\1 \2 \3/p' "$out" | tail -n 1)
  rm -f "$out"
  if [ -z "$counts" ]; then
    echo "e2e: the $name phase ended without its summary (exit $status)"
    failed=$((failed + 1))
    return
  fi
  read -r p f s <<<"$counts"
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
  [ "$status" -eq 0 ] || [ "$f" -gt 0 ] || failed=$((failed + 1))
  echo "== e2e: $name phase took $((SECONDS - t)) s"
}

cleanup_kubeconfig_cluster() {
  "$E2E_HELM" uninstall securetunnel-operator -n securetunnel-system >/dev/null 2>&1 || true
  kubectl delete namespace e2e-apps --ignore-not-found --wait=true >/dev/null 2>&1 || true
  # The DNSEndpoint CRD stays: on a cluster of its own, external-dns may rely on it.
  kubectl delete -k "$root/config/default" --ignore-not-found >/dev/null 2>&1 || true
}

with_local_control_plane() { # with_local_control_plane PHASE (E2E_NODE: whether a real node runs)
  local t=$SECONDS
  bash "$cluster" up || { failed=$((failed + 1)); echo "e2e: the local control plane did not start"; return; }
  echo "== e2e: the cluster was up in $((SECONDS - t)) s"
  local state
  state=$(bash "$cluster" env | sed 's/^export KUBECONFIG=//; s/\/admin.kubeconfig$//')
  E2E_KUBECONFIG="$state/admin.kubeconfig" E2E_CLUSTER_SH="$cluster" E2E_AUDIT_LOG="$state/logs/audit.log" \
    phase "$1"
  bash "$cluster" down
}

echo "== e2e: the real cloudflared on rendered configs"
phase connector

if [ $target = local ]; then
  trap 'bash "$cluster" down >/dev/null 2>&1 || true' EXIT
  echo "== e2e: local control plane, installed by Helm"
  E2E_NODE=0 with_local_control_plane helm
  echo "== e2e: a fresh local control plane, installed by kustomize"
  E2E_NODE=0 with_local_control_plane kustomize
  if [ "$(id -u)" = 0 ]; then
    echo "== e2e: a fresh local cluster with a real node: the operator from its image, by Helm"
    E2E_NODE=1 with_local_control_plane node-helm
    echo "== e2e: a fresh local cluster with a real node: the operator from its image, by kustomize"
    E2E_NODE=1 with_local_control_plane node-kustomize
  elif [ "$ci" = true ]; then
    echo "e2e: FAILED (the node phases need root: bridges, iptables, mounts; CI runs as root)"
    failed=$((failed + 1))
  else
    echo "e2e: SKIPPED the node phases (they need root: bridges, iptables, mounts)"
    skipped=$((skipped + 1))
  fi
else
  echo "== e2e: the cluster in KUBECONFIG ($(kubectl config current-context))"
  trap cleanup_kubeconfig_cluster EXIT
  cleanup_kubeconfig_cluster
  E2E_KUBECONFIG="$KUBECONFIG" phase helm
  cleanup_kubeconfig_cluster
  E2E_KUBECONFIG="$KUBECONFIG" phase kustomize
fi

trap - EXIT
[ $target = local ] || cleanup_kubeconfig_cluster
echo "== e2e: took $((SECONDS - start)) s in all"
echo "e2e: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
