//! The Grafana dashboard the chart ships (charts/securetunnel-operator/files/dashboard.json):
//! a dashboard current Grafana loads, whose every query parses as PromQL (PyPI
//! `promql-parser`) and selects only metrics that are really exported:
//!
//! - `securetunnel_*`: by the operator, read from its own registry's exposition;
//! - `kube_*`: by kube-state-metrics (tests/fixtures/metrics/kube-state-metrics.txt);
//! - anything else: by cloudflared (tests/fixtures/metrics/cloudflared.txt: scraped from a
//!   real connector, which the e2e connector phase checks again, or cited from its source).
//!
//! A renamed metric on either side fails `every_metric_the_dashboard_queries_is_exported`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::dashboard::{
    dashboard, exporter_of, exposition_names, expressions, metric_list, panels, substitute,
    variables, Exporter, Verified, CLOUDFLARED_METRICS, KUBE_STATE_METRICS,
};
use common::tools::{root, scratch_dir, venv_tool};
use kube::runtime::controller::Action;
use securetunnel_operator::metrics::Metrics;
use serde_json::Value;

/// The series names the operator's registry exposes once every metric has a sample
/// (a reconcile that succeeded and one that failed).
fn operator_names() -> BTreeSet<String> {
    let metrics = Metrics::new();
    metrics.observe(&Ok(Action::await_change()), Duration::from_millis(3));
    metrics.observe(
        &Err(securetunnel_operator::Error::CacheNotReady("Service")),
        Duration::from_millis(3),
    );
    exposition_names(&metrics.render().expect("the registry encodes"))
}

/// For each expression, the metric names it selects, or why it did not parse.
fn metric_names(exprs: &[String]) -> Vec<Result<Vec<String>, String>> {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let dir = scratch_dir(&format!("promql-{}", CALLS.fetch_add(1, Ordering::Relaxed)));
    let file = dir.join("expressions.json");
    std::fs::write(&file, serde_json::to_string(exprs).expect("json")).expect("write");
    let out = Command::new(venv_tool("python"))
        .current_dir(root())
        .arg("scripts/promql.py")
        .arg(&file)
        .output()
        .expect("python runs");
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "scripts/promql.py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).expect("promql.py prints JSON");
    assert_eq!(results.len(), exprs.len());
    results
        .into_iter()
        .map(|r| match r["error"].as_str() {
            Some(e) => Err(e.to_string()),
            None => Ok(r["metrics"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()),
        })
        .collect()
}

/// What each metric name the queries use was checked against.
struct Report {
    problems: Vec<String>,
    used: BTreeMap<String, (Exporter, String)>,
}

/// Checks every (where, expression) against the exporters' names.
fn check(queries: &[(String, String)], variables: &[&str]) -> Report {
    let operator = operator_names();
    let cloudflared = metric_list(CLOUDFLARED_METRICS);
    let kube_state = metric_list(KUBE_STATE_METRICS);
    let exprs: Vec<String> = queries
        .iter()
        .map(|(_, e)| substitute(e, variables))
        .collect();
    let mut report = Report {
        problems: Vec::new(),
        used: BTreeMap::new(),
    };
    for ((place, expr), names) in queries.iter().zip(metric_names(&exprs)) {
        let names = match names {
            Ok(n) => n,
            Err(e) => {
                report
                    .problems
                    .push(format!("{place}: cannot check ({e}): {expr}"));
                continue;
            }
        };
        if names.is_empty() {
            report
                .problems
                .push(format!("{place}: selects no metric: {expr}"));
        }
        for name in names {
            let exporter = exporter_of(&name);
            let verified = match exporter {
                Exporter::Operator => operator
                    .contains(&name)
                    .then(|| "the operator's registry".to_string()),
                Exporter::KubeStateMetrics => kube_state.get(&name).map(describe),
                Exporter::Cloudflared => cloudflared.get(&name).map(describe),
            };
            match verified {
                Some(how) => {
                    report.used.insert(name, (exporter, how));
                }
                None => report.problems.push(format!(
                    "{place}: {name} is not exported by {exporter:?} ({})",
                    match exporter {
                        Exporter::Operator => format!("it exports {operator:?}"),
                        Exporter::KubeStateMetrics => format!("see {KUBE_STATE_METRICS}"),
                        Exporter::Cloudflared => format!("see {CLOUDFLARED_METRICS}"),
                    }
                )),
            }
        }
    }
    report
}

fn describe(v: &Verified) -> String {
    match v {
        Verified::Scraped => "scraped".to_string(),
        Verified::Source(cite) => format!("source {cite}"),
    }
}

#[test]
fn every_metric_the_dashboard_queries_is_exported() {
    let d = dashboard();
    let vars = variables(&d);
    let vars: Vec<&str> = vars.iter().map(String::as_str).collect();
    let report = check(&expressions(&d), &vars);
    assert!(
        report.problems.is_empty(),
        "the dashboard's queries:\n{}",
        report.problems.join("\n")
    );
    // Printed with --nocapture: what each name was checked against.
    for (name, (exporter, how)) in &report.used {
        println!("{name:55} {exporter:?}: {how}");
    }
    let exporters: BTreeSet<Exporter> = report.used.values().map(|(e, _)| *e).collect();
    assert_eq!(
        exporters.len(),
        3,
        "the dashboard reads the operator, cloudflared and kube-state-metrics: {:?}",
        report.used
    );
}

#[test]
fn a_renamed_metric_or_a_broken_query_fails_the_check() {
    let d = dashboard();
    let vars = variables(&d);
    let vars: Vec<&str> = vars.iter().map(String::as_str).collect();
    let renames = [
        (
            "securetunnel_reconciles_total",
            "securetunnel_reconcile_total",
        ),
        (
            "cloudflared_tunnel_total_requests",
            "cloudflared_tunnel_requests_total",
        ),
        (
            "cloudflared_tunnel_tunnel_register_success",
            "cloudflared_tunnel_register_success",
        ),
        (
            "kube_deployment_status_replicas_ready",
            "kube_deployment_ready_replicas",
        ),
    ];
    for (old, new) in renames {
        let queries: Vec<(String, String)> = expressions(&d)
            .into_iter()
            .map(|(place, e)| (place, e.replace(old, new)))
            .collect();
        let report = check(&queries, &vars);
        assert!(
            report.problems.iter().any(|p| p.contains(new)),
            "renaming {old} to {new} went unnoticed: {:?}",
            report.problems
        );
    }
    let broken = vec![
        (
            "unclosed".to_string(),
            "sum(rate(cloudflared_tunnel_total_requests[5m])".to_string(),
        ),
        (
            "by name".to_string(),
            r#"{__name__=~"cloudflared_.*"}"#.to_string(),
        ),
        ("no metric".to_string(), "vector(1)".to_string()),
    ];
    let report = check(&broken, &vars);
    for (place, _) in &broken {
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.starts_with(place.as_str())),
            "{place}: {:?}",
            report.problems
        );
    }
}

#[test]
fn the_metric_lists_parse_and_are_not_empty() {
    let cloudflared = metric_list(CLOUDFLARED_METRICS);
    assert!(cloudflared.values().any(|v| *v == Verified::Scraped));
    for (name, v) in &cloudflared {
        if let Verified::Source(cite) = v {
            assert!(
                cite.split_once(':').is_some_and(
                    |(file, line)| file.ends_with(".go") && line.parse::<u32>().is_ok()
                ),
                "{name}: a source citation is FILE.go:LINE, not {cite:?}"
            );
        }
    }
    assert!(!metric_list(KUBE_STATE_METRICS).is_empty());
    assert!(common::dashboard::parse_metric_list("a_metric guessed\n").is_err());
    assert!(common::dashboard::parse_metric_list("a scraped\na scraped\n").is_err());
}

/// The structure Grafana (schemaVersion 39, Grafana 10.4 and later) loads: variables for the
/// data source, namespace and tunnel; every panel on the data source variable, described,
/// inside the 24-column grid and overlapping no other.
#[test]
fn the_dashboard_is_a_grafana_dashboard() {
    let d = dashboard();
    assert_eq!(d["schemaVersion"], 39);
    assert!(d["uid"]
        .as_str()
        .is_some_and(|u| !u.is_empty() && u.len() <= 40));
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(d["id"].is_null(), "a provisioned dashboard carries no id");

    let vars: BTreeMap<&str, &Value> = d["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| (v["name"].as_str().unwrap_or_default(), v))
        .collect();
    assert_eq!(vars["datasource"]["type"], "datasource");
    assert_eq!(vars["datasource"]["query"], "prometheus");
    for name in ["namespace", "tunnel"] {
        assert_eq!(vars[name]["type"], "query", "{name}");
        assert_eq!(vars[name]["datasource"]["uid"], "${datasource}", "{name}");
    }

    let all = panels(&d);
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(i64, i64), String> = BTreeMap::new();
    for p in &all {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "a panel without a title: {p}");
        assert!(
            ids.insert(p["id"].as_i64().expect("panel id")),
            "{title}: duplicate id"
        );
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_i64().expect("x"),
            g["y"].as_i64().expect("y"),
            g["w"].as_i64().expect("w"),
            g["h"].as_i64().expect("h"),
        );
        assert!(
            x >= 0 && w > 0 && x + w <= 24 && h > 0,
            "{title}: gridPos {g}"
        );
        for cx in x..x + w {
            for cy in y..y + h {
                if let Some(other) = cells.insert((cx, cy), title.to_string()) {
                    panic!("{title} overlaps {other}");
                }
            }
        }
        if p["type"] == "row" {
            continue;
        }
        assert!(
            ["timeseries", "stat"].contains(&p["type"].as_str().unwrap_or_default()),
            "{title}: panel type {}",
            p["type"]
        );
        assert!(
            p["description"].as_str().is_some_and(|s| s.len() > 20),
            "{title}: no description"
        );
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
            assert!(
                refs.insert(t["refId"].as_str().expect("refId")),
                "{title}: refId"
            );
            let expr = t["expr"].as_str().expect("expr");
            // cloudflared's series are selected per tunnel through the variables.
            if expr.contains("cloudflared_") || expr.contains("quic_") {
                assert!(
                    expr.contains("$namespace") && expr.contains("$tunnel"),
                    "{title}: {expr} ignores the namespace or tunnel variable"
                );
            }
        }
    }
}
