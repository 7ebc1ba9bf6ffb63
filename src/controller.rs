//! Controller wiring: the SecureTunnel watch, label-filtered watches of the
//! children (which also fill the reconciler's caches), a metadata-only watch
//! of Secrets so a token rotation triggers a reconcile, and graceful shutdown.

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::SecureTunnel;
use crate::children::{ChildKind, Integration};
use crate::index::TunnelIndex;
use crate::metrics::Metrics;
use crate::names::{managed_selector, MANAGED_BY};
use crate::origin::ServiceRef;
use crate::reconcile::cache::ChildCache;
use crate::reconcile::{error_policy, reconcile, Context, Stores};

/// Every resource the controller lists and watches with these integrations, as (group,
/// plural): src/rbac.rs must grant `list` and `watch` on each (a test checks it).
pub fn watched(integrations: &[Integration]) -> Vec<(&'static str, &'static str)> {
    let mut out = vec![("securetunnel.dev", "securetunnels")];
    out.extend(
        ChildKind::enabled(integrations)
            .into_iter()
            .map(|k| (k.group(), k.plural())),
    );
    out.extend([("", "services"), ("", "secrets")]);
    out
}

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch these namespaces only; empty watches all.
    pub namespaces: Vec<String>,
    /// Reconciles running at once.
    pub concurrency: u16,
    /// Identifies this replica in Events (usually the pod name).
    pub instance: Option<String>,
    /// The integrations whose kinds the operator watches and writes.
    pub integrations: Vec<Integration>,
}

fn api_for<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// One label-filtered watch per child kind. Each event updates the child summaries;
/// each touched child triggers its tunnel's reconcile. The objects themselves are
/// dropped once summarised.
/// A kind that becomes available again (see [`ChildCache::apply_event`]) sends on
/// `recovered`, and every tunnel is reconciled.
fn child_watches(
    client: &Client,
    namespace: Option<&str>,
    cache: &Arc<ChildCache>,
    recovered: &futures::channel::mpsc::UnboundedSender<()>,
) -> Vec<(
    ApiResource,
    BoxStream<'static, Result<DynamicObject, watcher::Error>>,
)> {
    cache
        .kinds()
        .map(|kind| {
            let resource = kind.api_resource();
            let api = match namespace {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                None => Api::all_with(client.clone(), &resource),
            };
            let config = watcher::Config::default()
                .labels(&managed_selector())
                .any_semantic();
            let cache = cache.clone();
            let recovered = recovered.clone();
            let stream = watcher(api, config)
                .default_backoff()
                .inspect(move |event| match event {
                    Ok(event) => {
                        if cache.apply_event(kind, event) {
                            info!(
                                kind = kind.kind(),
                                "available again: reconciling every tunnel"
                            );
                            let _ = recovered.unbounded_send(());
                        }
                    }
                    // The controller logs the error itself.
                    Err(error) => cache.watch_failed(kind, error),
                })
                .touched_objects()
                .boxed();
            (resource, stream)
        })
        .collect()
}

/// Tunnels in the Secret's namespace that take their token from it.
fn tunnels_using_secret(
    tunnels: &Store<SecureTunnel>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<SecureTunnel>> {
    let namespace = secret.namespace();
    let name = secret.name_any();
    tunnels
        .state()
        .iter()
        .filter(|t| t.namespace() == namespace && t.spec.token_secret_ref.name == name)
        .map(|t| ObjectRef::from_obj(t.as_ref()))
        .collect()
}

/// Runs the controller until SIGTERM or Ctrl-C, then lets running reconciles
/// finish: one controller for the whole cluster, or one per watched namespace.
pub async fn run(client: Client, settings: Settings, metrics: Arc<Metrics>) {
    if settings.namespaces.is_empty() {
        run_scope(client, &settings, None, metrics).await;
    } else {
        let scopes = settings.namespaces.iter().map(|ns| {
            run_scope(
                client.clone(),
                &settings,
                Some(ns.as_str()),
                metrics.clone(),
            )
        });
        futures::future::join_all(scopes).await;
    }
}

async fn run_scope(
    client: Client,
    settings: &Settings,
    namespace: Option<&str>,
    metrics: Arc<Metrics>,
) {
    let children = Arc::new(ChildCache::new(&ChildKind::enabled(&settings.integrations)));
    let (recovered, recovered_rx) = futures::channel::mpsc::unbounded();
    let child_streams = child_watches(&client, namespace, &children, &recovered);
    // Services a rule may name, cached in full (the policy needs their
    // selectors and ports): in every namespace, or in the watched one only,
    // where a rule naming another namespace's Service is reported unresolved.
    let (services, services_writer) = reflector::store();
    let service_stream = reflector::reflector(
        services_writer,
        watcher(
            api_for::<Service>(&client, namespace),
            watcher::Config::default().any_semantic(),
        )
        .modify(|service| service.managed_fields_mut().clear()),
    )
    .default_backoff()
    .touched_objects();
    let (token_secrets, token_secrets_writer) = reflector::store();
    let stores = Stores {
        children,
        services,
        token_secrets,
    };

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: MANAGED_BY.to_string(),
            instance: settings.instance.clone(),
        },
    );
    // The SecureTunnel watch feeds the index (each spec validated once per change)
    // before the reflector and the controller see the event.
    let index = Arc::new(TunnelIndex::default());
    let (tunnel_store, tunnel_writer) = reflector::store();
    let index_writer = index.clone();
    let tunnel_stream = reflector::reflector(
        tunnel_writer,
        watcher(
            api_for::<SecureTunnel>(&client, namespace),
            watcher::Config::default().any_semantic(),
        )
        .modify(|tunnel| tunnel.managed_fields_mut().clear())
        .default_backoff()
        .inspect(move |event| {
            if let Ok(event) = event {
                index_writer.apply_event(event);
            }
        }),
    )
    .applied_objects();
    let context = Arc::new(Context::with_metrics(
        client.clone(),
        recorder,
        stores,
        metrics.clone(),
        index.clone(),
    ));

    let controller = Controller::for_stream(tunnel_stream, tunnel_store.clone());
    metrics.watch_tunnels(tunnel_store.clone());
    // Token Secrets carry no label of ours; their metadata is enough to notice
    // a rotation (and to skip re-reading a token that did not change). Only
    // the identity and resourceVersion are kept.
    let token_secrets_stream = reflector::reflector(
        token_secrets_writer,
        watcher(
            api_for::<PartialObjectMeta<Secret>>(&client, namespace),
            watcher::Config::default().any_semantic(),
        )
        .modify(|meta| {
            meta.metadata.managed_fields = None;
            meta.metadata.annotations = None;
            meta.metadata.labels = None;
            meta.metadata.owner_references = None;
        }),
    )
    .default_backoff()
    .touched_objects();

    info!(
        namespace = namespace.unwrap_or("<all>"),
        concurrency = settings.concurrency,
        "starting controller"
    );
    let controller =
        controller.with_config(controller::Config::default().concurrency(settings.concurrency));
    child_streams
        .into_iter()
        .fold(controller, |c, (resource, stream)| {
            c.owns_stream_with(stream, resource)
        })
        .watches_stream(token_secrets_stream, move |secret| {
            tunnels_using_secret(&tunnel_store, &secret)
        })
        .watches_stream(service_stream, move |service| {
            index.tunnels_using(&ServiceRef {
                namespace: service.namespace().unwrap_or_default(),
                name: service.name_any(),
            })
        })
        .reconcile_all_on(recovered_rx)
        .shutdown_on_signal()
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "controller event");
            }
        })
        .await;
    info!("controller stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store::Writer;

    fn tunnel(namespace: &str, name: &str, secret: &str) -> SecureTunnel {
        SecureTunnel::test()
            .named(namespace, name)
            .with_token_secret(secret)
    }

    fn secret(namespace: &str, name: &str) -> PartialObjectMeta<Secret> {
        PartialObjectMeta {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn rbac_grants_list_and_watch_on_everything_watched() {
        let mut granted_access = crate::rbac::controller();
        for i in Integration::ALL {
            granted_access.extend(crate::rbac::integration(i));
        }
        for (group, resource) in watched(&Integration::ALL) {
            for verb in ["list", "watch"] {
                let granted = granted_access.iter().any(|a| {
                    a.group == group && a.resources.contains(&resource) && a.verbs.contains(&verb)
                });
                assert!(
                    granted,
                    "src/rbac.rs does not grant {verb} on {group}/{resource}"
                );
            }
        }
    }

    #[test]
    fn a_secret_change_triggers_exactly_the_tunnels_that_use_it() {
        let mut writer: Writer<SecureTunnel> = Writer::default();
        for t in [
            tunnel("apps", "a", "shared-token"),
            tunnel("apps", "b", "shared-token"),
            tunnel("apps", "c", "other-token"),
            tunnel("ops", "d", "shared-token"),
        ] {
            writer.apply_watcher_event(&watcher::Event::Apply(t));
        }
        let store = writer.as_reader();

        let mut hits: Vec<String> = tunnels_using_secret(&store, &secret("apps", "shared-token"))
            .into_iter()
            .map(|r| r.name)
            .collect();
        hits.sort();
        assert_eq!(hits, ["a", "b"]);
        assert!(tunnels_using_secret(&store, &secret("apps", "unrelated")).is_empty());
        let ops: Vec<String> = tunnels_using_secret(&store, &secret("ops", "shared-token"))
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(ops, ["d"]);
    }
}
