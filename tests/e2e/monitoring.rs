//! The PodMonitor of a tunnel with `spec.metrics.podMonitor`, on the real API server with
//! the Prometheus Operator's own CRD (its schema checks what the operator writes).

use kube::Client;

use securetunnel_operator::children::ChildKind;
use securetunnel_operator::names::{selector_labels, METRICS_PORT_NAME};

use crate::dns::CRD_PICKUP;
use crate::lifecycle::{
    child, delete_and_collect, wait_condition, wait_condition_within, NAMESPACE, TOKEN_SECRET,
};
use crate::support::{dynamic_api, wait_for, Env, Outcome};

const NAME: &str = "monitored";

fn apply(env: &Env, allow_from: bool) -> Outcome {
    let allow = if allow_from {
        "    allowFrom: { namespaceLabels: { kubernetes.io/metadata.name: monitoring } }\n"
    } else {
        ""
    };
    env.apply(&format!(
        "apiVersion: securetunnel.dev/v1alpha1
kind: SecureTunnel
metadata: {{ name: {NAME}, namespace: {NAMESPACE} }}
spec:
  tokenSecretRef: {{ name: {TOKEN_SECRET} }}
  replicas: 1
  ingress: [ {{ hostname: monitored.e2e.example.com, service: \"http://web.{NAMESPACE}.svc:8080\" }} ]
  metrics:
{allow}    podMonitor: {{ labels: {{ release: prometheus }}, interval: 30s }}
"
    ))
    .map(|_| ())
}

/// Installs the Prometheus Operator's PodMonitor CRD and waits until it is Established.
pub async fn install_crd(env: &Env) -> Outcome {
    let dir = env
        .prometheus_operator_src
        .as_ref()
        .ok_or("E2E_PROMETHEUS_OPERATOR_SRC is not set")?;
    let crd = dir.join("example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml");
    env.kubectl(&["apply", "--server-side", "-f", &crd.display().to_string()])?;
    crate::install::established(env, &ChildKind::PodMonitor.crd_name()).await
}

/// With the CRD installed, the PodMonitor passes its schema and selects the connectors'
/// metrics port; the tunnel says `Monitoring=True`.
pub async fn pod_monitor_applied(env: &Env, client: &Client) -> Outcome {
    install_crd(env).await?;
    apply(env, true)?;
    let api = dynamic_api(client, NAMESPACE, &ChildKind::PodMonitor.api_resource());
    wait_for(CRD_PICKUP, "the PodMonitor", || async {
        let obj = api
            .get_opt(&child(NAME))
            .await
            .map_err(|e| e.to_string())?
            .ok_or("not created yet")?;
        let json = serde_json::to_value(&obj).map_err(|e| e.to_string())?;
        let selector = serde_json::to_value(selector_labels(NAME)).map_err(|e| e.to_string())?;
        let endpoint = &json["spec"]["podMetricsEndpoints"][0];
        if json["spec"]["selector"]["matchLabels"] != selector
            || endpoint["port"] != METRICS_PORT_NAME
            || endpoint["path"] != "/metrics"
            || json["metadata"]["labels"]["release"] != "prometheus"
        {
            return Err(format!("unexpected PodMonitor {json}"));
        }
        Ok(())
    })
    .await?;
    wait_condition_within(client, NAME, "Monitoring", "True", "Applied", CRD_PICKUP).await
}

/// Without `spec.metrics.allowFrom` no Prometheus may scrape: the tunnel says so.
pub async fn unscrapable_is_reported(env: &Env, client: &Client) -> Outcome {
    apply(env, false)?;
    wait_condition(client, NAME, "Monitoring", "False", "MetricsNotAllowed").await?;
    delete_and_collect(client, NAME, &[ChildKind::PodMonitor]).await
}
