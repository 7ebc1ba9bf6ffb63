# One real node for the local cluster of e2e/cluster.sh (sourced by it, not run on its own):
# containerd and runc, the reference CNI plugins on a bridge, a kubelet and kube-proxy from the
# control plane's own Kubernetes module, kube-router's firewall as the NetworkPolicy engine
# (shown to enforce before `up` returns), CoreDNS as the cluster DNS, and a stand-in for the
# Cloudflare edge on a host of the suite's own (a network namespace).
#
# Nothing leaves the machine. Every address here is the suite's:
#
#   10.250.0.0/24    the node's bridge (st-node0): the node at .1, the edge host at .7
#   10.244.0.0/24    pods (bridge st-cni0, gateway .1); no masquerade
#   10.96.0.0/16     Services; cluster DNS at 10.96.0.10
#   198.41.192.7,    the edge host's addresses, inside the connectors' default
#   198.41.200.7     egress.cloudflareEdge, reached through a host route, never a gateway
#
# and before any pod starts, a chain first in FORWARD drops every forwarded packet whose
# destination is not one of them (cloudflared dials some addresses directly, such as its
# DNS-over-TLS fallback 1.1.1.1:853). CoreDNS answers cluster.local and the zone cloudflared
# discovers the edge through (argotunnel.com), and forwards nothing.
#
# Only one node runs on a machine at a time (the bridges, the edge host and the kubelet's
# port are the machine's).

node_name=node-0
node_bridge=st-node0
node_ip=10.250.0.1
node_net=10.250.0.0/24
pod_bridge=st-cni0
pod_cidr=10.244.0.0/24
pod_gateway=10.244.0.1
service_cidr=10.96.0.0/16
cluster_dns=10.96.0.10
edge_netns=st-edge
edge_host_ip=10.250.0.7
edge_ips=(198.41.192.7 198.41.200.7)
edge_quic_port=7844
edge_visitor_port=8080
# The dashboard's stand-in (remotely-managed tunnels' configurations), on the node's bridge only.
edge_admin_port=8081
guard_chain=ST-E2E-GUARD
kubelet_port=10250
kubelet_healthz_port=$((base + 248))
proxy_metrics_port=$((base + 249))
proxy_healthz_port=$((base + 256))
router_health_port=$((base + 258))
# Short paths: unix sockets (containerd's and its shims') are limited to 108 bytes.
node_run=/run/st-e2e
node_dir="$state/node"

# The images the node is given, as REF per NAME (`cluster.sh images` prints them). The
# connector image is named by cloudflared's release, so that a SecureTunnel can ask for it.
cloudflared_release() {
  sed -n 's/^\/\/ .*(release \([0-9.]*\)).*/\1/p' "$modules/cloudflared/go.mod"
}
operator_version() {
  sed -n 's/^version = "\(.*\)"/\1/p' "$here/../Cargo.toml" | head -n 1
}
image_ref() { # image_ref NAME
  case $1 in
    pause) echo "registry.k8s.io/pause:3.10" ;;
    operator) echo "securetunnel.test/securetunnel-operator:$(operator_version)" ;;
    cloudflared) echo "securetunnel.test/cloudflared:$(cloudflared_release)" ;;
    origin) echo "securetunnel.test/origin:$(module_version kubernetes k8s.io/kubernetes)" ;;
    probe) echo "securetunnel.test/agnhost:$(module_version kubernetes k8s.io/kubernetes)" ;;
    coredns) echo "securetunnel.test/coredns:$(module_version coredns github.com/coredns/coredns)" ;;
    *) die "no image $1" ;;
  esac
}
images=(pause operator cloudflared origin probe coredns)

# The operator's default connector image (src/api/tunnel.rs). The module proxy serves one
# cloudflared release only, so the suite's cloudflared image is tagged with this name too: a
# SecureTunnel that names no image, as the README's first tunnel, runs it.
default_connector_image() {
  sed -n 's/^pub const DEFAULT_IMAGE: &str = "\(.*\)";/\1/p' "$here/../src/api/tunnel.rs"
}

node_enabled() { [ "${E2E_NODE:-1}" != 0 ]; }
# The NetworkPolicy engine: kube-router, unless E2E_NETPOL=none.
netpol_enabled() { [ "${E2E_NETPOL:-kube-router}" = kube-router ]; }

# --- binaries and images --------------------------------------------------------------

# The pause binary of the pod sandboxes, from the Kubernetes module's own source.
build_pause() {
  local src out="$cache/bin/pause-$k8s_version"
  if [ ! -x "$out/pause" ]; then
    src=$(cd "$(k8s_module)" && go mod download -json k8s.io/kubernetes |
      sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')/build/pause/linux/pause.c
    [ -f "$src" ] || die "no $src in the Kubernetes module"
    mkdir -p "$out"
    gcc -Os -Wall -Werror -static -DVERSION="v3.10-securetunnel" -o "$out/pause" "$src" ||
      die "building pause failed (gcc, static)"
  fi
  echo "$out"
}

# The operator's static binary, as the Dockerfile expects it (see its header).
build_operator() {
  (cd "$here/.." && cargo build --locked --release --target x86_64-unknown-linux-musl \
    --bin securetunnel-operator >&2) || die "building the operator (musl) failed"
}

buildah_() {
  buildah --root "$cache/buildah/root" --runroot "$node_run/buildah" --storage-driver vfs "$@"
}

# build_image NAME: an image archive (docker-archive) in the cache, made once per content.
# The operator's comes from the project's Dockerfile; the others from a Containerfile made
# here around a binary the suite builds anyway.
build_image() {
  local name=$1 ref ctx file bin k8s
  ref=$(image_ref "$name")
  ctx=$(mktemp -d)
  file="$ctx/Containerfile"
  case $name in
    pause)
      cp "$(build_pause)/pause" "$ctx/"
      printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$file"
      ;;
    operator)
      build_operator
      rm -rf "$ctx"
      ctx="$here/.."
      file="$here/../Dockerfile"
      ;;
    cloudflared)
      # As the published image: the binary, run as 65532 with --no-autoupdate. The stand-in
      # edge's CA is the image's only trusted root, so cloudflared trusts the suite's edge
      # and nothing else; nothing the operator renders is changed for it.
      bin=$(build_tool cloudflared)
      cp "$bin/cloudflared" "$ctx/"
      cp "$cache/edge-ca/ca.crt" "$ctx/ca-certificates.crt"
      cat >"$file" <<'EOF'
FROM scratch
COPY cloudflared /usr/local/bin/cloudflared
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/cloudflared", "--no-autoupdate"]
CMD ["version"]
EOF
      ;;
    origin | probe)
      k8s=$(build_tool kubernetes)
      cp "$k8s/agnhost" "$ctx/"
      if [ "$name" = origin ]; then
        # Answers every HTTP request on 8080 with its own pod name.
        printf 'FROM scratch\nCOPY agnhost /agnhost\nUSER 65532:65532\nENTRYPOINT ["/agnhost", "serve-hostname", "--http", "--port", "8080"]\n' >"$file"
      else
        # As Kubernetes' agnhost image: the binary at /agnhost.
        printf 'FROM scratch\nCOPY agnhost /agnhost\nENTRYPOINT ["/agnhost"]\nCMD ["pause"]\n' >"$file"
      fi
      ;;
    coredns)
      bin=$(build_tool coredns)
      cp "$bin/coredns" "$ctx/"
      printf 'FROM scratch\nCOPY coredns /coredns\nENTRYPOINT ["/coredns"]\n' >"$file"
      ;;
  esac
  local digest
  if [ "$name" = operator ]; then
    digest=$(cat "$file" "$here/../target/x86_64-unknown-linux-musl/release/securetunnel-operator" | sha256sum | cut -c1-16)
  else
    digest=$(cd "$ctx" && cat Containerfile $(ls | grep -v Containerfile) | sha256sum | cut -c1-16)
  fi
  local archive="$cache/images/$name-$digest.tar"
  if [ ! -f "$archive" ]; then
    mkdir -p "$cache/images" "$node_run"
    log "building image $ref"
    buildah_ build --quiet --layers=false --isolation chroot -f "$file" -t "$ref" "$ctx" >/dev/null ||
      die "buildah could not build $ref"
    rm -f "$cache/images/$name-"*.tar
    buildah_ push --quiet "$ref" "docker-archive:$archive.tmp:$ref" >/dev/null ||
      die "buildah could not write $ref to $archive"
    mv "$archive.tmp" "$archive"
    # The archive is what the node imports: buildah's own copy is not kept.
    buildah_ rmi -f "$ref" >/dev/null 2>&1 || true
  fi
  [ "$name" = operator ] || rm -rf "$ctx"
  echo "$archive"
}

# The stand-in edge's CA and certificate (for quic.cftunnel.com, the name cloudflared dials the
# edge by): made once per cache, since the CA is built into the connector image.
edge_pki() {
  local d="$cache/edge-ca"
  [ -f "$d/edge.crt" ] && return
  mkdir -p "$d"
  openssl ecparam -name prime256v1 -genkey -noout -out "$d/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$d/ca.key" -subj "/CN=securetunnel-e2e-edge-ca" -days 3650 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$d/ca.crt" 2>/dev/null
  openssl ecparam -name prime256v1 -genkey -noout -out "$d/edge.key" 2>/dev/null
  openssl req -new -key "$d/edge.key" -subj "/CN=quic.cftunnel.com" -out "$d/edge.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:quic.cftunnel.com,DNS:h2.cftunnel.com\n' >"$d/edge.ext"
  openssl x509 -req -in "$d/edge.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 3650 -extfile "$d/edge.ext" -out "$d/edge.crt" 2>/dev/null
}

node_build() {
  command -v buildah >/dev/null || die "buildah is needed to build the node's images (apt-get install buildah)"
  build_tool kubernetes >/dev/null
  local t
  for t in containerd runc cni-plugins coredns cloudflared fakeedge; do build_tool "$t" >/dev/null; done
  if netpol_enabled; then build_tool kube-router >/dev/null; fi
  edge_pki
  for t in "${images[@]}"; do build_image "$t" >/dev/null; done
}

cmd_images() {
  [ -S "$node_run/containerd.sock" ] || die "no node is up"
  local t
  for t in "${images[@]}"; do echo "$t $(image_ref "$t")"; done
  echo "cloudflared-default $(default_connector_image)"
}

# --- network --------------------------------------------------------------------------

guard_add() { # guard_add CIDR: a destination forwarded packets may have
  iptables -C "$guard_chain" -d "$1" -j RETURN 2>/dev/null ||
    iptables -I "$guard_chain" 1 -d "$1" -j RETURN
}

node_network_up() {
  sysctl -qw net.ipv4.ip_forward=1
  # Pods on one bridge reach each other through iptables (Service translation, and the
  # NetworkPolicy engine's filters) only with bridge netfilter on.
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 ||
    die "net.bridge.bridge-nf-call-iptables cannot be set (bridge netfilter)"
  iptables -N "$guard_chain" 2>/dev/null || iptables -F "$guard_chain"
  iptables -A "$guard_chain" -j DROP
  local cidr
  for cidr in "$pod_cidr" "$node_net" "$service_cidr" "${edge_ips[@]}"; do guard_add "$cidr"; done
  iptables -C FORWARD -j "$guard_chain" 2>/dev/null || iptables -I FORWARD 1 -j "$guard_chain"

  ip link add "$node_bridge" type bridge
  ip addr add "$node_ip/24" dev "$node_bridge"
  ip link set "$node_bridge" up

  # The edge host: on the node's bridge, with the edge's addresses behind it.
  ip netns add "$edge_netns"
  ip link add st-edge-h type veth peer name st-edge-n
  ip link set st-edge-n netns "$edge_netns"
  ip link set st-edge-h master "$node_bridge" up
  ip -n "$edge_netns" link set lo up
  ip -n "$edge_netns" addr add "$edge_host_ip/24" dev st-edge-n
  local a
  for a in "${edge_ips[@]}"; do
    ip -n "$edge_netns" addr add "$a/32" dev st-edge-n
    ip route add "$a/32" via "$edge_host_ip" dev "$node_bridge"
  done
  ip -n "$edge_netns" link set st-edge-n up
  ip -n "$edge_netns" route add default via "$node_ip"
}

node_network_down() {
  local a
  for a in "${edge_ips[@]}"; do ip route del "$a/32" 2>/dev/null || true; done
  ip netns del "$edge_netns" 2>/dev/null || true
  ip link del st-edge-h 2>/dev/null || true
  ip link del "$node_bridge" 2>/dev/null || true
  ip link del "$pod_bridge" 2>/dev/null || true
  while iptables -D FORWARD -j "$guard_chain" 2>/dev/null; do :; done
  iptables -F "$guard_chain" 2>/dev/null || true
  iptables -X "$guard_chain" 2>/dev/null || true
  # The kubelet's own chains (kube-proxy --cleanup leaves them).
  local cmd table chain
  for cmd in iptables ip6tables; do
    while $cmd -D INPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
    while $cmd -D OUTPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
    for table in filter nat mangle; do
      for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
        $cmd -t $table -F $chain 2>/dev/null && $cmd -t $table -X $chain 2>/dev/null || true
      done
    done
  done
}

# --- configuration ----------------------------------------------------------------------

node_pki() {
  local client="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
  cert kubelet "/O=system:nodes/CN=system:node:$node_name" "$client"
  cert kubelet-serving "/CN=$node_name" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$node_ip,DNS:$node_name"
  cert kube-proxy "/CN=system:kube-proxy" "$client"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
}

node_configure() {
  local k8s containerd runc cni
  k8s=$(build_tool kubernetes)
  containerd=$(build_tool containerd)
  runc=$(build_tool runc)
  cni=$(build_tool cni-plugins)
  mkdir -p "$node_dir/cni" "$node_dir/containerd" "$node_dir/kubelet" "$node_run"
  cat >"$node_dir/containerd.toml" <<EOF
version = 3
root = "$node_dir/containerd"
state = "$node_run/containerd"

[grpc]
  address = "$node_run/containerd.sock"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$(image_ref pause)"

[plugins.'io.containerd.cri.v1.runtime']
  # This machine refuses to lower a process's oom_score_adj; without this, runc fails every
  # container with "failed to update /proc/self/oom_score_adj: Permission denied".
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = "$runc/runc"
      SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$cni"]
    conf_dir = "$node_dir/cni"
EOF
  cat >"$node_dir/cni/10-pods.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "securetunnel-e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$pod_bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$pod_cidr", "gateway": "$pod_gateway" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "$node_dir/cni-ipam"
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
  # Pods of dnsPolicy Default (CoreDNS) get this, not the host's resolver.
  echo "nameserver $node_ip" >"$node_dir/resolv.conf"
  cat >"$node_dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz_port
tlsCertFile: $state/pki/kubelet-serving.crt
tlsPrivateKeyFile: $state/pki/kubelet-serving.key
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true }
  x509: { clientCAFile: $state/pki/ca.crt }
authorization: { mode: Webhook }
containerRuntimeEndpoint: unix://$node_run/containerd.sock
# This machine's cgroups are v1.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDNS: [$cluster_dns]
clusterDomain: cluster.local
resolvConf: $node_dir/resolv.conf
# The images are imported, never pulled: nothing may collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: { memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1% }
maxPods: 110
EOF
  kubeconfig kubelet
  kubeconfig kube-proxy
  cat >"$node_dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: { kubeconfig: $state/kube-proxy.kubeconfig }
hostnameOverride: $node_name
clusterCIDR: $pod_cidr
bindAddress: $node_ip
metricsBindAddress: 127.0.0.1:$proxy_metrics_port
healthzBindAddress: 127.0.0.1:$proxy_healthz_port
# Leave the machine's conntrack limits as they are.
conntrack: { maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s }
EOF

  define containerd "$containerd/containerd" --config "$node_dir/containerd.toml"
  define kubelet "$k8s/kubelet" \
    --config "$node_dir/kubelet.yaml" --kubeconfig "$state/kubelet.kubeconfig" \
    --hostname-override "$node_name" --node-ip "$node_ip" --root-dir "$node_dir/kubelet" \
    --node-labels "type=real"
  define kube-proxy "$k8s/kube-proxy" --config "$node_dir/kube-proxy.yaml"
  define fakeedge ip netns exec "$edge_netns" "$(build_tool fakeedge)/fakeedge" \
    -listen "0.0.0.0:$edge_quic_port" -visitors "0.0.0.0:$edge_visitor_port" \
    -admin "$edge_host_ip:$edge_admin_port" \
    -cert "$cache/edge-ca/edge.crt" -key "$cache/edge-ca/edge.key"
  echo "$(build_tool fakeedge)/fakeedge" >"$state/cmd/fakeedge.bin"
  # The NetworkPolicy engine: kube-router's firewall alone (the bridge plugin routes, kube-proxy
  # serves Services). It reads pods, namespaces and NetworkPolicies with the admin's kubeconfig.
  netpol_enabled || return 0
  define kube-router "$(build_tool kube-router)/kube-router" \
    --run-firewall=true --run-router=false --run-service-proxy=false --enable-cni=false \
    --kubeconfig "$state/admin.kubeconfig" --hostname-override "$node_name" \
    --service-cluster-ip-range "$service_cidr" \
    --health-port "$router_health_port" --metrics-port 0
}

ctr_() { "$(build_tool containerd)/ctr" --address "$node_run/containerd.sock" -n k8s.io "$@"; }

node_import_images() {
  local t ref
  for t in "${images[@]}"; do
    ref=$(image_ref "$t")
    ctr_ images import --local "$(build_image "$t")" >/dev/null || die "cannot import $ref"
    # Pinned: the kubelet's image garbage collection never removes it.
    ctr_ images label "$ref" io.cri-containerd.pinned=pinned >/dev/null
  done
  ref=$(default_connector_image)
  [ -n "$ref" ] || die "no DEFAULT_IMAGE in src/api/tunnel.rs"
  ctr_ images tag --force "$(image_ref cloudflared)" "$ref" >/dev/null
  ctr_ images label "$ref" io.cri-containerd.pinned=pinned >/dev/null
}

# The cluster DNS: CoreDNS in kube-system, labelled as the connectors' default egress.dns
# selects, behind the kube-dns Service at the kubelet's clusterDNS; and the zone the
# connectors discover the edge through.
coredns_manifests() {
  local a records="" i=1
  for a in "${edge_ips[@]}"; do
    records+="    _v2-origintunneld._tcp 60 IN SRV 1 1 $edge_quic_port region$i.v2
    region$i.v2 60 IN A $a
"
    i=$((i + 1))
  done
  cat <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: { name: coredns, namespace: kube-system }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: "system:coredns" }
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: "system:coredns" }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns" }
subjects: [{ kind: ServiceAccount, name: coredns, namespace: kube-system }]
---
apiVersion: v1
kind: ConfigMap
metadata: { name: coredns, namespace: kube-system }
data:
  Corefile: |
    cluster.local in-addr.arpa ip6.arpa {
        errors
        health {
            lameduck 2s
        }
        ready
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
        }
        cache 5
        loadbalance
    }
    argotunnel.com {
        errors
        file /etc/coredns/argotunnel.com.db
    }
    . {
        errors
        # Nothing is forwarded: every other name does not exist here.
        template ANY ANY {
            rcode NXDOMAIN
        }
    }
  argotunnel.com.db: |
    \$ORIGIN argotunnel.com.
    @ 60 IN SOA ns.argotunnel.com. hostmaster.argotunnel.com. 1 7200 3600 1209600 60
    @ 60 IN NS ns.argotunnel.com.
$records    protocol-v2 60 IN TXT "[{\"protocol\":\"quic\",\"percentage\":100},{\"protocol\":\"http2\",\"percentage\":0}]"
    cfd-features 60 IN TXT "{}"
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: coredns, namespace: kube-system, labels: { k8s-app: kube-dns } }
spec:
  replicas: 1
  selector: { matchLabels: { k8s-app: kube-dns } }
  template:
    metadata: { labels: { k8s-app: kube-dns } }
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      containers:
      - name: coredns
        image: $(image_ref coredns)
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - { name: dns, containerPort: 53, protocol: UDP }
        - { name: dns-tcp, containerPort: 53, protocol: TCP }
        readinessProbe: { httpGet: { path: /ready, port: 8181 }, periodSeconds: 2 }
        livenessProbe: { httpGet: { path: /health, port: 8080 }, periodSeconds: 10 }
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: { add: [NET_BIND_SERVICE], drop: [ALL] }
        volumeMounts: [{ name: config, mountPath: /etc/coredns, readOnly: true }]
      volumes: [{ name: config, configMap: { name: coredns } }]
---
apiVersion: v1
kind: Service
metadata: { name: kube-dns, namespace: kube-system, labels: { k8s-app: kube-dns } }
spec:
  clusterIP: $cluster_dns
  selector: { k8s-app: kube-dns }
  ports:
  - { name: dns, port: 53, protocol: UDP }
  - { name: dns-tcp, port: 53, protocol: TCP }
EOF
}

node_ready() {
  kubectl get node "$node_name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True
}

# The rest of the node, once the control plane answers (node_network_up came first).
node_up() {
  node_configure
  start containerd
  wait_until 60 "containerd" test -S "$node_run/containerd.sock"
  node_import_images
  start kubelet
  start kube-proxy
  start fakeedge
  wait_until 120 "the node $node_name to be Ready" node_ready
  if netpol_enabled; then
    start kube-router
    wait_until 60 "kube-router's health" curl -sf "http://127.0.0.1:$router_health_port/healthz"
  fi
  coredns_manifests | kubectl apply -f - >/dev/null
  wait_until 120 "CoreDNS to be available" \
    kubectl -n kube-system wait --for=condition=Available deployment/coredns --timeout=2s
  if netpol_enabled; then node_preflight; fi
}

# The NetworkPolicy engine enforces, or nothing that relies on it runs: a pod that reaches
# another is refused once a policy denies it, and reaches it again once the policy is gone.
# A missing ipset or set match, or bridge traffic that never meets iptables, fails here.
node_preflight() {
  local ns=st-preflight ip t
  kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: { name: $ns }
---
apiVersion: v1
kind: Pod
metadata: { name: target, namespace: $ns, labels: { role: target } }
spec:
  containers: [ { name: origin, image: $(image_ref origin), imagePullPolicy: Never } ]
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: $ns }
spec:
  containers:
  - { name: probe, image: $(image_ref probe), imagePullPolicy: Never, command: [/agnhost, pause] }
EOF
  kubectl -n "$ns" wait --for=condition=Ready pod/target pod/client --timeout=120s >/dev/null ||
    die "preflight: the pods of $ns did not start"
  ip=$(kubectl -n "$ns" get pod target -o jsonpath='{.status.podIP}')
  preflight_connects() { kubectl -n "$ns" exec client -- /agnhost connect "$ip:8080" --timeout=1s; }
  preflight_refused() { ! preflight_connects; }
  wait_until 30 "preflight: the client pod to reach the target pod" preflight_connects
  kubectl apply -f - >/dev/null <<EOF
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: deny-target, namespace: $ns }
spec:
  podSelector: { matchLabels: { role: target } }
  policyTypes: [Ingress]
EOF
  t=$(date +%s%N)
  wait_until 30 "preflight: the NetworkPolicy engine to refuse what a policy denies" preflight_refused
  t=$((($(date +%s%N) - t) / 1000000))
  log "kube-router enforces: a denial took effect within $t ms of its NetworkPolicy's apply (each try is a kubectl exec)"
  kubectl -n "$ns" delete networkpolicy deny-target >/dev/null
  wait_until 30 "preflight: the engine to lift the denial" preflight_connects
  kubectl delete namespace "$ns" --wait=false >/dev/null
}

# kube-router's chains and ipsets. Its own --cleanup-config (2.1.0) removes none of them and
# then crashes in the service proxy's cleanup; stale chains would filter the next cluster's
# pods that are given the same addresses.
router_cleanup() {
  local hook rule chain chains set
  for hook in INPUT FORWARD OUTPUT; do
    { iptables -S "$hook" | grep -- '-j KUBE-ROUTER-' || true; } | sed 's/^-A /-D /' |
      while read -r rule; do eval "iptables $rule" || true; done
  done
  chains=$(iptables -S | awk '/^-N (KUBE-ROUTER-|KUBE-POD-FW-|KUBE-NWPLCY-)/ { print $2 }')
  for chain in $chains; do iptables -F "$chain" || true; done
  for chain in $chains; do iptables -X "$chain" || true; done
  for set in $(ipset list -n 2>/dev/null | grep -E '^(KUBE-SRC-|KUBE-DST-|kube-router-)'); do
    ipset destroy "$set" || true
  done
}

# Stops the node's processes and removes everything they left: containers, mounts, network
# namespaces, bridges, iptables chains, ipsets. Safe to run when nothing is up.
node_down_all() {
  local c
  for c in kube-router fakeedge kube-proxy kubelet; do stop "$c"; done
  if [ -S "$node_run/containerd.sock" ] && pid_of containerd >/dev/null; then
    local tasks
    tasks=$(ctr_ tasks ls -q 2>/dev/null || true)
    for c in $tasks; do ctr_ tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true; done
    sleep 1
    for c in $tasks; do ctr_ tasks delete -f "$c" >/dev/null 2>&1 || true; done
    for c in $(ctr_ containers ls -q 2>/dev/null || true); do ctr_ containers delete "$c" >/dev/null 2>&1 || true; done
  fi
  stop containerd
  # Shims whose containerd is gone, and what they still run.
  pkill -KILL -f "containerd-shim-runc-v2 .*-address $node_run/containerd.sock" 2>/dev/null || true
  if [ -x "$(build_tool kubernetes)/kube-proxy" ]; then
    "$(build_tool kubernetes)/kube-proxy" --cleanup >/dev/null 2>&1 || true
  fi
  router_cleanup
  local m
  for m in $(findmnt -rn -o TARGET | grep -E "^($node_dir|$node_run)" | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  for m in $(ip netns list 2>/dev/null | awk '/^cni-/ { print $1 }'); do ip netns del "$m" 2>/dev/null || true; done
  node_network_down
  rm -rf "$node_run"
}
