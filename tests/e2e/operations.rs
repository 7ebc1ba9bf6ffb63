//! The operator under operations: a restart over converged tunnels (no writes, counted by
//! the API server), the API server and etcd stopped mid-reconcile, two replicas sharing a
//! Lease, and RBAC (no request of the operator refused).

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client};

use crate::install;
use crate::lifecycle;
use crate::support::{
    audit_events, during_restart, request_totals, wait_for, writes_between, Env, Operator, Outcome,
    RESTARTS,
};

/// How long the operator may take to converge after an outage.
const RECOVERY: Duration = Duration::from_secs(300);

/// The operator's reconcile counter, from its own /metrics.
pub async fn reconciles(op: &Operator) -> Result<f64, String> {
    let text = op.get("/metrics").await?;
    text.lines()
        .find_map(|l| l.strip_prefix("securetunnel_reconciles_total "))
        .ok_or_else(|| "no securetunnel_reconciles_total in /metrics".to_string())?
        .trim()
        .parse()
        .map_err(|e| format!("securetunnel_reconciles_total: {e}"))
}

/// Restart over `tunnels` converged tunnels: the new process reconciles each of them and
/// the API server counts no write to any kind the operator writes (Leases aside: a new
/// replica takes the leader Lease, which is a write by design).
pub async fn restart_writes_nothing(
    env: &Env,
    old: Operator,
    start: impl Fn() -> Result<Operator, String>,
    tunnels: usize,
) -> Result<(Operator, Outcome), String> {
    old.stop();
    let before = request_totals(env)?;
    // The counter must have seen the operator's earlier writes, or a zero below proves nothing.
    let seen = writes_between(&Default::default(), &before, &["deployments", "configmaps"]);
    if seen.is_empty() {
        return Err(format!(
            "apiserver_request_total shows no write to deployments or configmaps at all: {:?}",
            before.keys().take(20).collect::<Vec<_>>()
        ));
    }
    let audit_mark = match &env.audit_log {
        Some(log) => audit_events(log)?.len(),
        None => 0,
    };
    let op = start()?;
    let reconciled = wait_for(
        Duration::from_secs(120),
        &format!("the restarted operator to reconcile {tunnels} tunnels"),
        || async {
            let n = reconciles(&op).await?;
            if n >= tunnels as f64 {
                Ok(())
            } else {
                Err(format!("{n} reconciles so far"))
            }
        },
    )
    .await;
    if let Err(e) = reconciled {
        return Ok((op, Err(e)));
    }
    // Let any write a reconcile would make reach the API server.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = request_totals(env)?;
    let resources: Vec<&str> = crate::support::written_resources()
        .into_iter()
        .filter(|r| *r != "leases")
        .collect();
    let writes = writes_between(&before, &after, &resources);
    if writes.is_empty() {
        return Ok((op, Ok(())));
    }
    // Name who wrote, from the audit log.
    let by = match &env.audit_log {
        Some(log) => audit_events(log)?
            .into_iter()
            .skip(audit_mark)
            .filter(|e| {
                !matches!(e.verb.as_str(), "get" | "list" | "watch")
                    && resources.contains(&e.resource.as_str())
            })
            .map(|e| format!("{} {} {} ({})", e.user, e.verb, e.uri, e.code))
            .collect::<Vec<_>>(),
        None => Vec::new(),
    };
    Ok((
        op,
        Err(format!(
            "apiserver_request_total counted writes after the restart: {writes:?}; audit: {by:#?}"
        )),
    ))
}

/// Stops `component` for `outage` right after new tunnels were applied, starts it again,
/// and checks that the same operator process converges every tunnel.
pub async fn outage(
    env: &Env,
    client: &Client,
    op: &mut Operator,
    component: &str,
    outage: Duration,
    names: &[String],
) -> Outcome {
    let pid = op.pid();
    for name in names {
        lifecycle::apply_tunnel(env, name, 1, &[&format!("{name}.example.com")])?;
    }
    // The outage is counted from the stop request: a graceful stop can itself take seconds.
    let stopped = Instant::now();
    let from = Timestamp::now();
    env.cluster("stop", component)?;
    tokio::time::sleep(outage.saturating_sub(stopped.elapsed())).await;
    env.cluster("start", component)?;
    if component == "kube-apiserver" {
        if let Ok(mut windows) = RESTARTS.lock() {
            windows.push((from, Timestamp::now()));
        }
    }
    if let Some(how) = op.exited() {
        return Err(format!(
            "the operator (pid {pid}) exited during the {component} outage: {how}"
        ));
    }
    lifecycle::all_converged(client, names, 1, RECOVERY).await?;
    if let Some(how) = op.exited() {
        return Err(format!(
            "the operator (pid {pid}) exited after the {component} outage: {how}"
        ));
    }
    // Nothing lost: the tunnel from before the outage is still whole.
    lifecycle::all_converged(client, &["e2e".to_string()], 2, RECOVERY).await
}

async fn holder(client: &Client) -> Result<Option<String>, String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), install::NAMESPACE);
    Ok(leases
        .get_opt(install::RELEASE)
        .await
        .map_err(|e| e.to_string())?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity))
}

/// Two replicas share the Lease; the leader is killed (no release), and the other takes
/// over within the lease duration and reconciles.
pub async fn leader_failover(
    env: &Env,
    client: &Client,
    start: impl Fn(&str) -> Result<Operator, String>,
) -> Outcome {
    let a = start("replica-a")?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let b = start("replica-b")?;
    let mut leader = String::new();
    wait_for(
        Duration::from_secs(60),
        "one replica to hold the Lease",
        || async {
            match holder(client).await? {
                Some(h) if h == "replica-a" || h == "replica-b" => Ok(()),
                other => Err(format!(
                    "Lease {}/{} holder is {other:?}",
                    install::NAMESPACE,
                    install::RELEASE
                )),
            }
        },
    )
    .await?;
    if let Some(h) = holder(client).await? {
        leader = h;
    }
    let (dead, survivor) = if leader == "replica-a" {
        (a, b)
    } else {
        (b, a)
    };
    let lease_duration = Duration::from_secs(
        Api::<Lease>::namespaced(client.clone(), install::NAMESPACE)
            .get(install::RELEASE)
            .await
            .map_err(|e| e.to_string())?
            .spec
            .and_then(|s| s.lease_duration_seconds)
            .unwrap_or(15) as u64,
    );
    let killed_at = Instant::now();
    dead.kill();
    let survivor_name = survivor.name.clone();
    // The standby retries every couple of seconds; allow that on top of the duration.
    wait_for(
        lease_duration + Duration::from_secs(5),
        &format!("{survivor_name} to take the Lease"),
        || async {
            match holder(client).await? {
                Some(h) if h == survivor_name => Ok(()),
                other => Err(format!("holder is {other:?}")),
            }
        },
    )
    .await?;
    let took = killed_at.elapsed();
    if took > lease_duration + Duration::from_secs(3) {
        return Err(format!(
            "{survivor_name} took over after {took:?}, the lease lasts {lease_duration:?}"
        ));
    }
    // The new leader reconciles.
    lifecycle::apply_tunnel(env, "after-failover", 1, &["failover.example.com"])?;
    lifecycle::all_converged(client, &["after-failover".to_string()], 1, lifecycle::WAIT).await?;
    survivor.stop();
    Ok(())
}

/// Every request the operator's user sent (but the suite's own `kubectl` calls as that
/// user) carries the operator's User-Agent, from the audit log `log`.
pub fn names_itself(log: &Path, user: &str) -> Outcome {
    let events = audit_events(log)?;
    let agent = securetunnel_operator::names::USER_AGENT;
    let sent: Vec<_> = events
        .iter()
        .filter(|e| e.user == user && !e.user_agent.starts_with("kubectl"))
        .collect();
    let ours = sent.iter().filter(|e| e.user_agent == agent).count();
    let others: Vec<String> = sent
        .iter()
        .filter(|e| e.user_agent != agent)
        .take(5)
        .map(|e| format!("{} {} (User-Agent {:?})", e.verb, e.uri, e.user_agent))
        .collect();
    if ours == 0 {
        return Err(format!("no request of {user} carries {agent:?}"));
    }
    if !others.is_empty() {
        return Err(format!(
            "requests of {user} without {agent:?}:\n  {}",
            others.join("\n  ")
        ));
    }
    println!("     note: {ours} requests of {user}, each with {agent:?}");
    Ok(())
}

/// No request of the operator's ServiceAccount was refused: from the audit log when the
/// control plane is ours, and from the operator's own logs in any case.
pub fn nothing_forbidden(env: &Env, user: &str, logs: &[&Path]) -> Outcome {
    let mut refused = Vec::new();
    let mut while_restarting = Vec::new();
    if let Some(log) = &env.audit_log {
        let events = audit_events(log)?;
        let mine = events.iter().filter(|e| e.user == user).count();
        if mine == 0 {
            return Err(format!(
                "the audit log has no request from {user}: the check would prove nothing"
            ));
        }
        for e in events
            .iter()
            .filter(|e| e.user == user && (e.code == 401 || e.code == 403))
        {
            let line = format!("{} {} -> {}", e.verb, e.uri, e.code);
            if during_restart(e.at) {
                while_restarting.push(line);
            } else {
                refused.push(line);
            }
        }
    }
    for log in logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for l in text
            .lines()
            .filter(|l| l.contains("forbidden") || l.contains("Forbidden"))
        {
            let at = serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["timestamp"].as_str().and_then(|t| t.parse().ok()));
            let line = format!("{}: {l}", log.display());
            if during_restart(at) {
                while_restarting.push(line);
            } else {
                refused.push(line);
            }
        }
    }
    if !while_restarting.is_empty() {
        println!(
            "     note: {} refusals while the API server was restarting (its RBAC cache not yet synced) are not counted",
            while_restarting.len()
        );
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} refused requests:\n  {}",
            refused.len(),
            refused.join("\n  ")
        ))
    }
}
