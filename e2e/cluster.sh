#!/usr/bin/env bash
# A real Kubernetes cluster on this machine, built from the Go module proxy: etcd,
# kube-apiserver (RBAC, ServiceAccount token signing, audit log), kube-controller-manager,
# kube-scheduler; one real node (containerd, runc, the CNI bridge, kubelet, kube-proxy,
# CoreDNS; e2e/node.sh says how, and which addresses it uses) with the images the suite builds
# offline, and a stand-in for the Cloudflare edge; and a kwok node, tainted, for checks that
# need nodes and no running pods. E2E_NODE=0 leaves the real node out (the kwok node then takes
# every pod, untainted). Starting a node needs root (bridges, iptables, mounts).
#
#   e2e/cluster.sh build          build the binaries and images into the cache (once per version)
#   e2e/cluster.sh up             generate certificates, start everything, wait for /readyz (and
#                                 for the node to be Ready and CoreDNS to be available)
#   e2e/cluster.sh env            print `export KUBECONFIG=…` for the running control plane
#   e2e/cluster.sh images         print `NAME REF` for each image loaded on the node
#   e2e/cluster.sh down           stop exactly the processes `up` started (by pid), remove the
#                                 state, and everything the node left (containers, mounts,
#                                 bridges, network namespaces, iptables chains)
#   e2e/cluster.sh stop NAME      stop one component (etcd, kube-apiserver, …), for fault tests
#   e2e/cluster.sh start NAME     start it again with the same flags (after kube-apiserver, the
#                                 controller-manager and scheduler restart too, see below)
#   e2e/cluster.sh bin TOOL       print the path of a built tool (helm, cloudflared, fakeedge,
#                                 external-dns, …), building it first
#   e2e/cluster.sh src NAME       print the source directory of e2e/cluster/NAME's module (for
#                                 the manifests it ships: external-dns's and the Prometheus
#                                 Operator's CRDs)
#
# Variables: K8S_VERSION (default: the version pinned in e2e/cluster/kubernetes/go.mod),
# SECURETUNNEL_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/securetunnel-operator),
# E2E_CLUSTER (a name, default "cluster"), E2E_STATE (default $SECURETUNNEL_CACHE/$E2E_CLUSTER),
# E2E_PORT_BASE (default 16000). e2e/run.sh uses a cluster of its own (E2E_CLUSTER=e2e-run, ports
# from 17000), so a control plane started by hand for a benchmark or a debugging session does not
# stand in its way.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
modules="$here/cluster"
cache=${SECURETUNNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/securetunnel-operator}
state=${E2E_STATE:-$cache/${E2E_CLUSTER:-cluster}}
base=${E2E_PORT_BASE:-16000}

# Ports, all on 127.0.0.1 (the API server's: see api_port_of).
etcd_port=$((base + 379))
etcd_peer_port=$((base + 380))
kcm_port=$((base + 257))
scheduler_port=$((base + 259))
kwok_port=$((base + 247))

# The version go.mod requires a module at (in a require block or a single line).
required() { # required GOMOD MODULE
  awk -v m="$2" '{ sub(/^require /, "") } $1 == m { sub(/^v/, "", $2); print $2; exit }' "$1"
}
pinned_k8s() { required "$modules/kubernetes/go.mod" k8s.io/kubernetes; }
k8s_version=${K8S_VERSION:-$(pinned_k8s)}
k8s_version=${k8s_version#v}

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: $*" >&2; exit 1; }

module_version() { required "$modules/$1/go.mod" "$2"; }

# The Go module that builds the control plane for $k8s_version: the pinned one in the
# repository, or for another version one generated in the cache the same way.
k8s_module() {
  if [ "$k8s_version" = "$(pinned_k8s)" ]; then
    echo "$modules/kubernetes"
    return
  fi
  local dir="$cache/src/kubernetes-$k8s_version"
  if [ ! -f "$dir/go.sum" ]; then
    log "generating a module for Kubernetes $k8s_version"
    mkdir -p "$dir"
    local gomod
    gomod=$(cd "$modules/kubernetes" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v$k8s_version" |
      sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
    [ -f "$gomod" ] || die "k8s.io/kubernetes@v$k8s_version is not served by the module proxy"
    local minor=${k8s_version#*.}
    {
      echo "module securetunnel-operator/e2e/cluster/kubernetes"
      echo
      echo "go $(sed -n 's/^go //p' "$gomod")"
      echo
      echo "require k8s.io/kubernetes v$k8s_version"
      echo
      echo "replace ("
      awk '/=> \.\/staging/ { print "\t" $1 " => " $1 " v0.'"$minor"'" }' "$gomod"
      echo ")"
      echo
      sed -n '/^tool (/,/^)/p' "$modules/kubernetes/go.mod"
    } >"$dir/go.mod"
    (cd "$dir" && go mod tidy) || die "go mod tidy failed for Kubernetes $k8s_version"
  fi
  echo "$dir"
}

# The Go toolchain a tool needs, when the local one is too old: external-dns 0.23 needs Go
# 1.27, which the go command takes from the module proxy (once).
tool_toolchain() {
  case $1 in
    external-dns) echo go1.27.3 ;;
  esac
}

# tool_source NAME: the source directory of the module behind e2e/cluster/NAME: the one that
# provides its `tool` line, or else the one it requires (a module kept for its manifests).
tool_source() {
  local dir="$modules/$1" toolchain package module
  [ -f "$dir/go.mod" ] || die "no module e2e/cluster/$1"
  toolchain=$(tool_toolchain "$1")
  package=$(awk '$1 == "tool" { print $2; exit }' "$dir/go.mod")
  if [ -n "$package" ]; then
    (cd "$dir" && env ${toolchain:+GOTOOLCHAIN=$toolchain} go list -f '{{.Module.Dir}}' "$package")
  else
    module=$(awk '$1 == "require" && NF == 3 { print $2; exit }' "$dir/go.mod")
    (cd "$dir" && go mod download "$module" && go list -m -f '{{.Dir}}' "$module")
  fi || die "cannot locate the source of $1"
}

# build_tool NAME: installs the `tool` lines of e2e/cluster/NAME/go.mod into the cache,
# once per pinned version, and prints the directory.
build_tool() {
  local name=$1 dir version ldflags="-s -w" target=tool toolchain= cgo=0 tags=
  case $name in
    kubernetes)
      dir=$(k8s_module)
      local minor=${k8s_version#*.}
      minor=${minor%%.*}
      # The tools it installs are the module's `tool` lines: a changed list is a new build.
      version=$k8s_version-$(sed -n '/^tool (/,/^)/p' "$dir/go.mod" | sha256sum | cut -c1-8)
      ldflags="$ldflags -X k8s.io/component-base/version.gitVersion=v$k8s_version"
      ldflags="$ldflags -X k8s.io/component-base/version.gitMajor=1"
      ldflags="$ldflags -X k8s.io/component-base/version.gitMinor=$minor"
      ldflags="$ldflags -X k8s.io/component-base/version.gitTreeState=clean"
      ;;
    etcd) dir="$modules/etcd"; version=$(module_version etcd go.etcd.io/etcd/server/v3) ;;
    kwok)
      dir="$modules/kwok"; version=$(module_version kwok sigs.k8s.io/kwok)
      ldflags="$ldflags -X sigs.k8s.io/kwok/pkg/consts.Version=v$version"
      ;;
    helm) dir="$modules/helm"; version=$(module_version helm helm.sh/helm/v4) ;;
    external-dns)
      dir="$modules/external-dns"; toolchain=$(tool_toolchain external-dns)
      version=$(module_version external-dns sigs.k8s.io/external-dns)
      ldflags="$ldflags -X sigs.k8s.io/external-dns/pkg/apis/externaldns.Version=v$version"
      ;;
    cloudflared)
      dir="$modules/cloudflared"
      version=$(module_version cloudflared github.com/cloudflare/cloudflared)
      local release
      release=$(sed -n 's/^\/\/ .*(release \([0-9.]*\)).*/\1/p' "$dir/go.mod")
      ldflags="$ldflags -X main.Version=$release"
      ;;
    fakeedge)
      # A stand-in for the Cloudflare edge (e2e/cluster/cloudflared/fakeedge), built with
      # cloudflared's own packages at the pinned version; rebuilt when its source changes.
      dir="$modules/cloudflared"; target=./fakeedge
      version=$(cat "$dir/go.mod" "$dir/go.sum" "$dir"/fakeedge/*.go | sha256sum | cut -c1-12)
      ;;
    containerd)
      dir="$modules/containerd"; version=$(module_version containerd github.com/containerd/containerd/v2)
      ldflags="$ldflags -X github.com/containerd/containerd/v2/version.Version=v$version"
      ;;
    runc)
      # cgo and libseccomp (Debian's libseccomp-dev): without them runc refuses every pod
      # whose seccomp profile is RuntimeDefault, as the connectors' and the operator's are.
      dir="$modules/runc"; version=$(module_version runc github.com/opencontainers/runc)
      cgo=1 tags=seccomp
      ldflags="$ldflags -X main.version=$version"
      ;;
    cni-plugins) dir="$modules/cni-plugins"; version=$(module_version cni-plugins github.com/containernetworking/plugins) ;;
    coredns) dir="$modules/coredns"; version=$(module_version coredns github.com/coredns/coredns) ;;
    kube-router)
      dir="$modules/kube-router"; version=$(module_version kube-router github.com/cloudnativelabs/kube-router/v2)
      ldflags="$ldflags -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=v$version"
      ;;
    *) [ -f "$modules/$name/go.mod" ] || die "no module e2e/cluster/$name"
       dir="$modules/$name"; version=$(sha256sum "$dir/go.mod" | cut -c1-12) ;;
  esac
  [ -n "$version" ] || die "no pinned version for $name"
  local out="$cache/bin/$name-$version"
  if [ ! -f "$out/.built" ]; then
    command -v go >/dev/null || die "go is needed to build $name (Go toolchain + module proxy)"
    log "building $name $version into $out (once)"
    local start=$SECONDS
    mkdir -p "$out"
    (cd "$dir" && env ${toolchain:+GOTOOLCHAIN=$toolchain} GOBIN="$out" CGO_ENABLED=$cgo \
      go install -trimpath ${tags:+-tags=$tags} -ldflags="$ldflags" "$target") ||
      die "building $name $version failed"
    if [ "$name" = kwok ]; then
      # The stages kwok ships as its "fast" set: Nodes initialised and kept Ready (with a
      # Lease heartbeat), pods moved to Running/Ready at once.
      local stages
      stages=$(cd "$dir" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage/fast
      kubectl kustomize "$stages" >"$out/stages.yaml" || die "cannot render kwok's stages from $stages"
    fi
    log "built $name $version in $((SECONDS - start)) s"
    touch "$out/.built"
  fi
  echo "$out"
}

cmd_build() {
  local tools=("$@")
  if [ ${#tools[@]} -eq 0 ]; then
    tools=(etcd kubernetes kwok)
    if node_enabled; then node_build; fi
  fi
  for t in "${tools[@]}"; do build_tool "$t" >/dev/null; done
}

# --- certificates -------------------------------------------------------------------

pki() {
  local d="$state/pki"
  mkdir -p "$d"
  local ossl=(openssl)
  key() { "${ossl[@]}" ecparam -name prime256v1 -genkey -noout -out "$d/$1.key" 2>/dev/null; }
  key ca
  "${ossl[@]}" req -x509 -new -key "$d/ca.key" -subj "/CN=securetunnel-e2e-ca" -days 7 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$d/ca.crt" 2>/dev/null
  cert() { # cert NAME SUBJECT EXT
    key "$1"
    "${ossl[@]}" req -new -key "$d/$1.key" -subj "$2" -out "$d/$1.csr" 2>/dev/null
    printf '%s\n' "$3" >"$d/$1.ext"
    "${ossl[@]}" x509 -req -in "$d/$1.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
      -days 7 -extfile "$d/$1.ext" -out "$d/$1.crt" 2>/dev/null
  }
  local client="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
  cert apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,IP:$node_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert admin "/O=system:masters/CN=e2e-admin" "$client"
  cert controller-manager "/CN=system:kube-controller-manager" "$client"
  cert scheduler "/CN=system:kube-scheduler" "$client"
  cert kwok "/O=system:masters/CN=kwok" "$client"
  # ServiceAccount token signing key pair.
  "${ossl[@]}" genrsa -out "$d/sa.key" 2048 2>/dev/null
  "${ossl[@]}" rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  if node_enabled; then node_pki; fi
  chmod 600 "$d"/*.key
}

kubeconfig() { # kubeconfig NAME -> $state/NAME.kubeconfig with the NAME client certificate
  local file="$state/$1.kubeconfig"
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: https://$(api_host):$api_port
    certificate-authority: $state/pki/ca.crt
users:
- name: $1
  user:
    client-certificate: $state/pki/$1.crt
    client-key: $state/pki/$1.key
contexts:
- name: e2e
  context: { cluster: e2e, user: $1 }
current-context: e2e
EOF
}

# --- processes ----------------------------------------------------------------------

# The command line of each component is written to $state/cmd/NAME, so that `start NAME`
# after a `stop NAME` runs exactly the same process again.
define() { # define NAME BINARY ARGS...
  local name=$1
  shift
  mkdir -p "$state/cmd"
  printf '%q ' "$@" >"$state/cmd/$name"
}

pid_of() { # the pid `up` recorded for NAME, if that process still runs the recorded binary
  local f="$state/pids/$1" pid bin
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  # NAME.bin names the binary when the command starts with a wrapper that execs it.
  if [ -f "$state/cmd/$1.bin" ]; then bin=$(cat "$state/cmd/$1.bin"); else bin=$(awk '{print $1}' "$state/cmd/$1"); fi
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$(eval echo "$bin")" || return 1
  echo "$pid"
}

start() { # start NAME
  local name=$1
  [ -f "$state/cmd/$name" ] || die "no component $name (is the control plane up?)"
  if pid_of "$name" >/dev/null; then
    log "$name is already running"
    return
  fi
  mkdir -p "$state/pids" "$state/logs"
  # setsid: the components outlive the shell that started them and get no terminal signals.
  eval "exec setsid $(cat "$state/cmd/$name")" </dev/null >>"$state/logs/$name.log" 2>&1 &
  echo $! >"$state/pids/$name"
}

stop() { # stop NAME: TERM, then KILL after 15 s
  local name=$1 pid
  pid=$(pid_of "$name") || { rm -f "$state/pids/$name"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$state/pids/$name"
}

# The real node (e2e/node.sh).
. "$here/node.sh"

# Where the API server serves: loopback, or with a real node the node's address, which pods
# reach through the kubernetes Service (kubeconfigs written by `up` name it). `up` records it.
# Whether `up` started (or began to start) a node here: its network comes before anything else.
node_was_up() { [ -f "$state/cmd/kubelet" ] || [ "$(cat "$state/api-host" 2>/dev/null)" = "$node_ip" ]; }

api_host() {
  if [ -f "$state/api-host" ]; then cat "$state/api-host"
  elif node_enabled; then echo "$node_ip"
  else echo 127.0.0.1; fi
}
# The API server's port when it serves on HOST. On the node's address it is 6443, as clusters
# commonly have it and as the chart's NetworkPolicy for the operator allows
# (networkPolicy.apiServerPorts): a NetworkPolicy engine sees the port behind the kubernetes
# Service's translation. That address is the suite's own, so no other cluster is in the way.
api_port_of() { # api_port_of HOST
  if [ "$1" = "$node_ip" ]; then echo 6443; else echo $((base + 443)); fi
}
# From the host `up` recorded (`up` sets it again once it has recorded the new one).
api_port=$(api_port_of "$(api_host)")

components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

# After an API server restart, the controller-manager and the scheduler start again too.
# A real control plane runs them with leader election: an outage longer than their renew
# deadline (10 s) makes them give up the lease and exit, and the kubelet starts them again
# on fresh watches. Here they run without leader election and without a supervisor, and a
# controller-manager that lived through a restart was seen to keep Deployment status stale
# for minutes ("read version … is not as new as written version …": its informers stopped
# catching up), which reads as the operator not converging.
restart_controllers() {
  local c
  for c in kube-controller-manager kube-scheduler; do
    stop "$c"
    start "$c"
  done
}

wait_until() { # wait_until SECONDS WHAT COMMAND...
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "timed out waiting for $what; last lines of the logs:"
      tail -n 20 "$state"/logs/*.log >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

api_ready() {
  curl -sf --max-time 3 --cacert "$state/pki/ca.crt" --cert "$state/pki/admin.crt" \
    --key "$state/pki/admin.key" "https://$(api_host):$api_port/readyz" | grep -qx ok
}

cmd_up() {
  local c
  for c in "${components[@]}"; do
    if [ -f "$state/cmd/$c" ] && pid_of "$c" >/dev/null; then
      die "a control plane is already up in $state (e2e/cluster.sh down first)"
    fi
  done
  # Pid files whose processes are gone (a reboot, a killed shell) are left-overs, not a cluster.
  local k8s etcd kwok
  etcd=$(build_tool etcd)
  k8s=$(build_tool kubernetes)
  kwok=$(build_tool kwok)
  local up_start=$SECONDS
  if node_enabled; then
    [ "$(id -u)" = 0 ] || die "a real node needs root (bridges, iptables, mounts); E2E_NODE=0 leaves it out"
    node_build
  fi
  # What a node of an earlier run left behind (its mounts are under $state).
  if node_enabled || node_was_up; then node_down_all; fi

  rm -rf "$state"
  mkdir -p "$state/logs"
  local host
  host=$(api_host)
  echo "$host" >"$state/api-host"
  api_port=$(api_port_of "$host")
  # The node's bridge first: the API server serves on its address.
  if node_enabled; then node_network_up; fi
  pki
  for u in admin controller-manager scheduler kwok; do kubeconfig "$u"; done
  cat >"$state/audit-policy.yaml" <<'EOF'
# Every request's metadata: the e2e suite counts the operator's requests by verb and
# resource and fails on any it was refused.
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
EOF

  define etcd "$etcd/server" \
    --name e2e --data-dir "$state/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "e2e=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync --log-level warn
  # With a real node, pods reach the API server through the kubernetes Service: it serves on
  # the node's address (and only there), and that is its endpoint.
  local apiserver_node_flags=(--bind-address 127.0.0.1 --advertise-address 127.0.0.1
    --endpoint-reconciler-type none)
  if node_enabled; then
    apiserver_node_flags=(--bind-address "$node_ip" --advertise-address "$node_ip"
      --kubelet-client-certificate "$state/pki/apiserver-kubelet-client.crt"
      --kubelet-client-key "$state/pki/apiserver-kubelet-client.key"
      --kubelet-certificate-authority "$state/pki/ca.crt"
      --kubelet-preferred-address-types InternalIP)
  fi
  define kube-apiserver "$k8s/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --secure-port "$api_port" "${apiserver_node_flags[@]}" \
    --tls-cert-file "$state/pki/apiserver.crt" --tls-private-key-file "$state/pki/apiserver.key" \
    --client-ca-file "$state/pki/ca.crt" \
    --requestheader-client-ca-file "$state/pki/ca.crt" --requestheader-allowed-names front-proxy \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --authorization-mode Node,RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$state/pki/sa.pub" \
    --service-account-signing-key-file "$state/pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --audit-policy-file "$state/audit-policy.yaml" --audit-log-path "$state/logs/audit.log" \
    --audit-log-format json \
    --profiling=false
  define kube-controller-manager "$k8s/kube-controller-manager" \
    --kubeconfig "$state/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$state/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$state/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" \
    --service-account-private-key-file "$state/pki/sa.key" \
    --root-ca-file "$state/pki/ca.crt" \
    --use-service-account-credentials \
    --leader-elect=false --profiling=false
  define kube-scheduler "$k8s/kube-scheduler" \
    --kubeconfig "$state/scheduler.kubeconfig" \
    --authentication-kubeconfig "$state/scheduler.kubeconfig" \
    --authorization-kubeconfig "$state/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$scheduler_port" \
    --leader-elect=false --profiling=false
  define kwok "$kwok/kwok" \
    --kubeconfig "$state/kwok.kubeconfig" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --server-address "127.0.0.1:$kwok_port" \
    --config "$kwok/stages.yaml" --node-lease-duration-seconds 40 \
    --cidr 10.244.0.0/16 --node-ip 10.240.0.10

  start etcd
  wait_until 60 "etcd" curl -sf "http://127.0.0.1:$etcd_port/health"
  start kube-apiserver
  wait_until 120 "kube-apiserver /readyz" api_ready
  start kube-controller-manager
  start kube-scheduler
  start kwok
  export KUBECONFIG="$state/admin.kubeconfig"
  # With a real node, the kwok node is tainted: a pod as users write it (no toleration, no
  # node selector) runs on the real node.
  local taints="[]"
  if node_enabled; then taints="[{ key: kwok.x-k8s.io/node, value: fake, effect: NoSchedule }]"; fi
  kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations: { kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0" }
  labels:
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
spec:
  taints: $taints
EOF
  wait_until 90 "the kwok node to be Ready" \
    bash -c "kubectl get node kwok-node-0 -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
  wait_until 90 "the default ServiceAccount" kubectl -n default get serviceaccount default
  if node_enabled; then node_up; fi
  log "Kubernetes $k8s_version is up in $((SECONDS - up_start)) s: export KUBECONFIG=$state/admin.kubeconfig"
}

cmd_down() {
  [ -d "$state" ] || return 0
  local i
  if node_was_up; then node_down_all; fi
  for ((i = ${#components[@]} - 1; i >= 0; i--)); do stop "${components[$i]}"; done
  rm -rf "$state/etcd" "$state/pids"
  log "stopped"
}

case ${1:-} in
  build) shift; cmd_build "$@" ;;
  up) cmd_up ;;
  down) cmd_down ;;
  env) [ -f "$state/admin.kubeconfig" ] || die "not up"; echo "export KUBECONFIG=$state/admin.kubeconfig" ;;
  images) cmd_images ;;
  stop) [ -n "${2:-}" ] || die "stop NAME"; stop "$2" ;;
  start)
    [ -n "${2:-}" ] || die "start NAME"
    start "$2"
    if [ "$2" = kube-apiserver ]; then
      wait_until 120 "kube-apiserver /readyz" api_ready || {
        # Which of its checks the API server still fails.
        curl -s --max-time 3 --cacert "$state/pki/ca.crt" --cert "$state/pki/admin.crt" \
          --key "$state/pki/admin.key" "https://$(api_host):$api_port/readyz?verbose" | grep -v '^\[+\]' >&2
        exit 1
      }
      restart_controllers
    fi
    ;;
  bin) [ -n "${2:-}" ] || die "bin TOOL"; echo "$(build_tool "$2")" ;;
  src) [ -n "${2:-}" ] || die "src TOOL"; tool_source "$2" ;;
  *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
