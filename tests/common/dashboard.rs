//! The Grafana dashboard the chart ships, and the metric names its queries may use: the
//! operator's (from its own registry), cloudflared's and kube-state-metrics' (from the lists
//! in tests/fixtures/metrics/, which say for each name how it was verified).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

pub const DASHBOARD: &str = "charts/securetunnel-operator/files/dashboard.json";
pub const CLOUDFLARED_METRICS: &str = "tests/fixtures/metrics/cloudflared.txt";
pub const KUBE_STATE_METRICS: &str = "tests/fixtures/metrics/kube-state-metrics.txt";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn dashboard() -> Value {
    let text = std::fs::read_to_string(root().join(DASHBOARD)).expect("read the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every panel, rows' nested panels included.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// Every PromQL expression of the dashboard, as (where, expression): each panel target's
/// `expr`, and the series selector of each `label_values(SELECTOR, LABEL)` variable query.
pub fn expressions(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for t in panel["targets"].as_array().into_iter().flatten() {
            out.push((
                format!(
                    "panel {:?} target {}",
                    panel["title"].as_str().unwrap_or_default(),
                    t["refId"].as_str().unwrap_or_default()
                ),
                t["expr"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] != "query" {
            continue;
        }
        let query = var["query"]["query"]
            .as_str()
            .or_else(|| var["query"].as_str())
            .unwrap_or_default();
        let selector = query
            .strip_prefix("label_values(")
            .and_then(|rest| rest.rsplit_once(','))
            .map(|(selector, _label)| selector.trim().to_string())
            .unwrap_or_else(|| query.to_string());
        out.push((
            format!("variable {}", var["name"].as_str().unwrap_or_default()),
            selector,
        ));
    }
    out
}

/// The expression with Grafana's variables replaced by values PromQL parses: `$__…`
/// intervals by a duration, the dashboard's own variables by a name. `$1` (a label_replace
/// reference) is not a variable and stays.
pub fn substitute(expr: &str, variables: &[&str]) -> String {
    let mut out = expr.to_string();
    for interval in ["$__rate_interval", "$__interval", "$__range"] {
        out = out.replace(interval, "5m");
    }
    for v in variables {
        out = out.replace(&format!("${{{v}}}"), "x");
        out = out.replace(&format!("${v}"), "x");
    }
    out
}

/// The dashboard's variable names.
pub fn variables(dashboard: &Value) -> Vec<String> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect()
}

/// How a name in a metric list was verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verified {
    /// Seen on /metrics of the real program.
    Scraped,
    /// Cited from the program's source (the text after `source`).
    Source(String),
}

/// A list of tests/fixtures/metrics/: series name -> how it was verified.
pub fn metric_list(relative: &str) -> BTreeMap<String, Verified> {
    let path = root().join(relative);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    parse_metric_list(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn parse_metric_list(text: &str) -> Result<BTreeMap<String, Verified>, String> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, how) = line
            .split_once(char::is_whitespace)
            .ok_or(format!("line {}: no `scraped` or `source …`", i + 1))?;
        let how = how.trim();
        let verified = if how == "scraped" {
            Verified::Scraped
        } else if let Some(cite) = how.strip_prefix("source ") {
            Verified::Source(cite.trim().to_string())
        } else {
            return Err(format!(
                "line {}: {how:?} is not `scraped` or `source …`",
                i + 1
            ));
        };
        if out.insert(name.to_string(), verified).is_some() {
            return Err(format!("line {}: {name} is listed twice", i + 1));
        }
    }
    Ok(out)
}

/// The series names of a Prometheus text or OpenMetrics exposition.
pub fn exposition_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// The names of a cloudflared exposition that are cloudflared's own, not its Go client
/// library's.
pub fn cloudflared_own(names: &BTreeSet<String>) -> BTreeSet<String> {
    names
        .iter()
        .filter(|n| {
            !["go_", "process_", "promhttp_"]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .cloned()
        .collect()
}

/// Where a metric name used by the dashboard must come from, by its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exporter {
    Operator,
    KubeStateMetrics,
    Cloudflared,
}

pub fn exporter_of(name: &str) -> Exporter {
    if name.starts_with("securetunnel_") {
        Exporter::Operator
    } else if name.starts_with("kube_") {
        Exporter::KubeStateMetrics
    } else {
        Exporter::Cloudflared
    }
}
