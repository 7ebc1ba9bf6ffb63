#!/usr/bin/env bash
# End-to-end tests against the real cluster KUBECONFIG points at (kind, k3d, …):
# install the operator (kustomize), apply a SecureTunnel, wait for its children and
# status, rotate the token, delete the tunnel and check garbage collection.
# Without a reachable cluster it says so and exits 0 ("SKIPPED"), so CI can run it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ns=securetunnel-e2e
timeout=${E2E_TIMEOUT:-180}

if ! command -v kubectl >/dev/null; then
  echo "e2e: SKIPPED (kubectl is not installed)"
  exit 0
fi
if [ -z "${KUBECONFIG:-}" ] && [ ! -f "$HOME/.kube/config" ]; then
  echo "e2e: SKIPPED (no KUBECONFIG and no ~/.kube/config: no cluster to test against)"
  exit 0
fi
if ! kubectl version --request-timeout=5s >/dev/null 2>&1; then
  echo "e2e: SKIPPED (the cluster in KUBECONFIG does not answer)"
  exit 0
fi

pass=0
fail=0
check() { # check NAME COMMAND...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; pass=$((pass + 1)); else echo "FAIL $name"; fail=$((fail + 1)); fi
}
wait_for() { # wait_for SECONDS COMMAND...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 2
  done
}
token() { # a syntactically valid token for a tunnel that does not exist
  printf '{"a":"0f1e2d3c4b5a69788796a5b4c3d2e1f0","t":"6ff42ae2-765d-4adf-8112-31c55c1551ef","s":"%s"}' "$1" | base64 -w0
}
jsonpath() { kubectl -n "$ns" get "$1" -o "jsonpath=$2"; }

cleanup() { kubectl delete namespace "$ns" --ignore-not-found --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT

kubectl apply -k "$root/config/default" >/dev/null
check "the operator becomes available" \
  kubectl -n securetunnel-system rollout status deployment/securetunnel-operator --timeout="${timeout}s"

kubectl create namespace "$ns" >/dev/null 2>&1 || true
kubectl -n "$ns" create secret generic e2e-token --from-literal=token="$(token c2VjcmV0LW9uZQ==)" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$ns" create deployment web --image=registry.k8s.io/pause:3.10 >/dev/null 2>&1 || true
kubectl -n "$ns" expose deployment web --port=8080 >/dev/null 2>&1 || true
cat <<YAML | kubectl apply -f - >/dev/null
apiVersion: securetunnel.dev/v1alpha1
kind: SecureTunnel
metadata: { name: e2e, namespace: $ns }
spec:
  tokenSecretRef: { name: e2e-token }
  ingress:
    - hostname: e2e.example.com
      service: http://web.$ns.svc:8080
YAML

for kind in networkpolicy secret configmap serviceaccount deployment poddisruptionbudget; do
  check "the $kind child exists" wait_for "$timeout" kubectl -n "$ns" get "$kind" e2e-cloudflared
done
check "the status names the tunnel" wait_for "$timeout" \
  bash -c "[ \"\$(kubectl -n $ns get securetunnel e2e -o jsonpath='{.status.tunnelID}')\" = 6ff42ae2-765d-4adf-8112-31c55c1551ef ]"
check "the status has a Ready condition" wait_for "$timeout" \
  bash -c "kubectl -n $ns get securetunnel e2e -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].reason}' | grep -q ."
check "the policy opens the Service's pods" \
  bash -c "kubectl -n $ns get networkpolicy e2e-cloudflared -o jsonpath='{.spec.egress[2].to[0].podSelector.matchLabels.app}' | grep -qx web"

before=$(jsonpath deployment/e2e-cloudflared '{.spec.template.metadata.annotations.securetunnel\.dev/token-hash}')
kubectl -n "$ns" create secret generic e2e-token --from-literal=token="$(token c2VjcmV0LXR3bw==)" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
check "rotating the token rolls the pods" wait_for "$timeout" \
  bash -c "[ \"\$(kubectl -n $ns get deployment e2e-cloudflared -o jsonpath='{.spec.template.metadata.annotations.securetunnel\.dev/token-hash}')\" != '$before' ]"

kubectl -n "$ns" delete configmap e2e-cloudflared >/dev/null
check "a deleted child is recreated" wait_for "$timeout" kubectl -n "$ns" get configmap e2e-cloudflared

kubectl -n "$ns" delete securetunnel e2e >/dev/null
check "deleting the tunnel removes its children" wait_for "$timeout" \
  bash -c "! kubectl -n $ns get deployment,configmap,networkpolicy e2e-cloudflared 2>/dev/null | grep -q e2e-cloudflared"
check "the user's Secret is left alone" kubectl -n "$ns" get secret e2e-token

echo "e2e: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
