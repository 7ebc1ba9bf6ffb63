#!/usr/bin/env python3
"""The scale benchmark on the real control plane (e2e/cluster.sh), beside the stand-in's.

    e2e/cluster.sh up && cargo build --release
    python3 scripts/real_scale.py [--tunnels 1000] [--concurrency 16]

Creates N SecureTunnels (1 replica, one rule naming a Service, each with its own token
Secret) in the namespace `bench` while no operator runs, then starts the operator binary
(target/release) and measures:

- the time until every tunnel's children exist (the Deployment is written last), and
  until every tunnel is Ready=True (kwok makes the pods Ready);
- the requests the API server counted (apiserver_request_total) on the resources the
  operator reads and writes, per tunnel and by verb. The counter has no user label, so
  requests by others on those resources are left out by what only they send: PUT (the
  operator never sends one) and the `status` subresource of Deployments and
  PodDisruptionBudgets (their controllers'). Events are counted apart (every controller
  writes them). LIST and WATCH are left out: this script polls by LIST;
- the operator's peak RSS (VmHWM) and CPU time;
- a restart over the converged tunnels: writes counted the same way (must be 0).

Prints one `summary: {json}` line last, like the stand-in benchmark.
"""

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMESPACE = "bench"
OPERATOR_RESOURCES = {
    "securetunnels",
    "networkpolicies",
    "secrets",
    "configmaps",
    "serviceaccounts",
    "poddisruptionbudgets",
    "deployments",
}
COUNTED_VERBS = {"GET", "POST", "PATCH", "APPLY", "DELETE"}


def kubectl(*args, stdin=None):
    out = subprocess.run(
        ["kubectl", *args], input=stdin, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        sys.exit(f"kubectl {' '.join(args)}: {out.stderr}")
    return out.stdout


def request_totals():
    """(verb, resource, subresource) -> count, from the API server's own counter."""
    totals = {}
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, value = line[len("apiserver_request_total{") :].rsplit("} ", 1)
        labels = {}
        for pair in labels_text.split('",'):
            if "=" in pair:
                k, v = pair.split("=", 1)
                labels[k] = v.strip('"')
        key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
        totals[key] = totals.get(key, 0.0) + float(value)
    return totals


def operator_requests(before, after):
    """By verb: the requests on the operator's resources that only the operator sends."""
    by_verb, events = {}, 0.0
    for key, value in after.items():
        verb, resource, subresource = key
        delta = value - before.get(key, 0.0)
        if delta <= 0:
            continue
        if resource == "events":
            if verb in ("POST", "PATCH"):
                events += delta
            continue
        if resource not in OPERATOR_RESOURCES or verb not in COUNTED_VERBS:
            continue
        if subresource == "status" and resource != "securetunnels":
            continue
        by_verb[verb] = by_verb.get(verb, 0.0) + delta
    return by_verb, events


def token():
    fields = {"a": "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "t": str(uuid.uuid4()), "s": base64.b64encode(os.urandom(32)).decode()}
    return base64.b64encode(json.dumps(fields).encode()).decode()


def objects(n):
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": NAMESPACE},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 8080, "targetPort": 8080}]},
        },
    ]
    for i in range(n):
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"t{i}-token", "namespace": NAMESPACE},
                "stringData": {"token": token()},
            }
        )
        docs.append(
            {
                "apiVersion": "securetunnel.dev/v1alpha1",
                "kind": "SecureTunnel",
                "metadata": {"name": f"t{i}", "namespace": NAMESPACE},
                "spec": {
                    "tokenSecretRef": {"name": f"t{i}-token"},
                    "replicas": 1,
                    "ingress": [{"hostname": f"t{i}.example.com", "service": f"http://web.{NAMESPACE}.svc:8080"}],
                },
            }
        )
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})


def counts():
    tunnels = json.loads(kubectl("get", "securetunnels", "-n", NAMESPACE, "-o", "json"))["items"]
    ready = sum(
        1
        for t in tunnels
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in t.get("status", {}).get("conditions", [])
        )
    )
    deployments = len(kubectl("get", "deployments", "-n", NAMESPACE, "-o", "name").split())
    return deployments, ready


def usage(pid):
    with open(f"/proc/{pid}/status") as f:
        hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return hwm / 1024, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_operator(binary, concurrency):
    return subprocess.Popen(
        [binary, "run", "--concurrency", str(concurrency), "--http-address", "127.0.0.1:0",
         "--config-check-interval-seconds", "0"],
        env={**os.environ, "RUST_LOG": "warn"},
        stdout=subprocess.DEVNULL,
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tunnels", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--binary", default=os.path.join(ROOT, "target/release/securetunnel-operator"))
    p.add_argument("--timeout", type=int, default=1800)
    a = p.parse_args()
    n = a.tunnels

    kubectl("apply", "--server-side", "-f", os.path.join(ROOT, "crds/securetunnel.yaml"))
    # Right after the apply the CRD may have no conditions yet, which `kubectl wait` takes
    # for an error rather than for "not yet".
    for _ in range(30):
        waited = subprocess.run(
            ["kubectl", "wait", "--for=condition=Established",
             "crd/securetunnels.securetunnel.dev", "--timeout=60s"],
            capture_output=True, text=True, check=False,
        )
        if waited.returncode == 0:
            break
        time.sleep(1)
    else:
        sys.exit(f"the SecureTunnel CRD is not established: {waited.stderr}")
    t0 = time.monotonic()
    kubectl("apply", "--server-side", "-f", "-", stdin=objects(n))
    print(f"created {n} tunnels and their token Secrets in {time.monotonic() - t0:.1f} s", flush=True)

    before = request_totals()
    started = time.monotonic()
    op = start_operator(a.binary, a.concurrency)
    applied_s = ready_s = None
    peak = (0.0, 0.0)
    while time.monotonic() - started < a.timeout:
        time.sleep(1)
        if op.poll() is not None:
            sys.exit(f"the operator exited: {op.returncode}")
        peak = usage(op.pid)
        deployments, ready = counts()
        elapsed = time.monotonic() - started
        if applied_s is None and deployments >= n:
            applied_s = elapsed
        if ready >= n:
            ready_s = elapsed
            break
    if ready_s is None:
        sys.exit(f"not converged in {a.timeout} s")
    # Let the last status writes land before the counter is read.
    time.sleep(3)
    after = request_totals()
    by_verb, events = operator_requests(before, after)
    rss_mib, cpu_s = usage(op.pid)
    op.send_signal(signal.SIGTERM)
    op.wait(timeout=60)

    # A restart over the converged state: every tunnel reconciled again.
    before_resync = request_totals()
    op = start_operator(a.binary, a.concurrency)
    time.sleep(max(20, n / 50))
    resync_by_verb, resync_events = operator_requests(before_resync, request_totals())
    resync_rss, resync_cpu = usage(op.pid)
    op.send_signal(signal.SIGTERM)
    op.wait(timeout=60)
    resync_writes = sum(v for k, v in resync_by_verb.items() if k != "GET")

    per_tunnel = {k: round(v / n, 2) for k, v in sorted(by_verb.items())}
    summary = {
        "tunnels": n,
        "server": "kube-apiserver (e2e/cluster.sh), kwok nodes",
        "children_applied_s": round(applied_s, 1),
        "converge_ready_s": round(ready_s, 1),
        "requests_per_tunnel": {
            "by_verb": per_tunnel,
            "total": round(sum(by_verb.values()) / n, 2),
            "events": round(events / n, 2),
        },
        "peak_rss_mib": round(rss_mib, 1),
        "cpu_s": round(cpu_s, 1),
        "resync_writes": resync_writes,
        "resync_events_all_actors": resync_events,
        "resync_reads_per_tunnel": round(resync_by_verb.get("GET", 0) / n, 2),
        "resync_peak_rss_mib": round(resync_rss, 1),
        "resync_cpu_ms_per_tunnel": round(resync_cpu * 1000 / n, 2),
    }
    print(f"summary: {json.dumps(summary)}")


if __name__ == "__main__":
    main()
