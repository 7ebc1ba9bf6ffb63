//! Controller wiring: the SecureTunnel watch, label-filtered watches of the
//! children (which also fill the reconciler's caches), a metadata-only watch
//! of Secrets so a token rotation triggers a reconcile, and graceful shutdown.

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::NamespaceResourceScope;
use kube::api::ApiResource;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::SecureTunnel;
use crate::children::{ChildKind, Integration};
use crate::index::TunnelIndex;
use crate::metrics::Metrics;
use crate::names::{
    managed_selector, unmanaged_selector, KUBECTL_LAST_APPLIED_ANNOTATION, MANAGED_BY,
};
use crate::reconcile::cache::ChildCache;
use crate::reconcile::events::EventPublisher;
use crate::reconcile::live::LiveObject;
use crate::reconcile::memo::RenderMemo;
use crate::reconcile::remote::RemoteConfigChecks;
use crate::reconcile::{error_policy, reconcile, Context, Stores};
use crate::validate::origin::ServiceRef;
use crate::validate::CaKind;

/// Every resource the controller lists and watches with these integrations, as (group,
/// plural): src/rbac.rs must grant `list` and `watch` on each (a test checks it).
pub fn watched(integrations: &[Integration]) -> Vec<(&'static str, &'static str)> {
    let mut out = vec![("securetunnel.dev", "securetunnels")];
    out.extend(
        ChildKind::enabled(integrations)
            .into_iter()
            .map(|k| (k.group(), k.plural())),
    );
    out.extend([("", "services"), ("", "secrets"), ("", "configmaps")]);
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
    /// The operator's own namespace: its pods ask connectors which configuration they run.
    pub operator_namespace: String,
    /// How often each Ready tunnel's connector is asked which configuration it runs;
    /// `None`: never.
    pub config_check_interval: Option<std::time::Duration>,
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

/// Children per page of a child watch's initial listing. Every kind is listed at once
/// when the operator starts, and each page is decoded whole before it is summarised: with
/// kube's default of 500 a fresh process at 1,000 tunnels peaked at about 100 MiB while
/// listing, against 40 MiB once converged. 100 costs 600 list requests at 10,000 tunnels.
const CHILD_LIST_PAGE: u32 = 100;

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
    BoxStream<'static, Result<LiveObject, watcher::Error>>,
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
                .page_size(CHILD_LIST_PAGE)
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

/// Tunnels in the Secret's namespace that take their token, or a rule's CA bundle, from it.
fn tunnels_using_secret(
    tunnels: &Store<SecureTunnel>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<SecureTunnel>> {
    let namespace = secret.namespace();
    let name = secret.name_any();
    tunnels
        .state()
        .iter()
        .filter(|t| t.namespace() == namespace)
        .filter(|t| t.spec.token_secret_ref.name == name || uses_ca_from(t, CaKind::Secret, &name))
        .map(|t| ObjectRef::from_obj(t.as_ref()))
        .collect()
}

/// Tunnels in the ConfigMap's namespace whose rules take a CA bundle from it.
fn tunnels_using_config_map(
    tunnels: &Store<SecureTunnel>,
    config_map: &PartialObjectMeta<ConfigMap>,
) -> Vec<ObjectRef<SecureTunnel>> {
    let namespace = config_map.namespace();
    let name = config_map.name_any();
    tunnels
        .state()
        .iter()
        .filter(|t| t.namespace() == namespace && uses_ca_from(t, CaKind::ConfigMap, &name))
        .map(|t| ObjectRef::from_obj(t.as_ref()))
        .collect()
}

/// Whether a rule of the tunnel names a CA bundle in the `kind` object `name`.
fn uses_ca_from(tunnel: &SecureTunnel, kind: CaKind, name: &str) -> bool {
    tunnel.spec.ingress.iter().any(|rule| {
        let Some(ca) = rule
            .origin_request
            .as_ref()
            .and_then(|o| o.ca_pool.as_ref())
        else {
            return false;
        };
        let reference = match kind {
            CaKind::ConfigMap => &ca.config_map_key_ref,
            CaKind::Secret => &ca.secret_key_ref,
        };
        reference.as_ref().is_some_and(|r| r.name == name)
    })
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

    let events = EventPublisher::new(client.clone(), MANAGED_BY, settings.instance.clone());
    // The SecureTunnel watch feeds the index (each spec validated once per change)
    // before the reflector and the controller see the event.
    let index = Arc::new(TunnelIndex::default());
    let memo = Arc::new(RenderMemo::default());
    let (tunnel_store, tunnel_writer) = reflector::store();
    let index_writer = index.clone();
    let memo_writer = memo.clone();
    let tunnel_stream = reflector::reflector(
        tunnel_writer,
        watcher(
            api_for::<SecureTunnel>(&client, namespace),
            watcher::Config::default().any_semantic(),
        )
        .modify(|tunnel| {
            tunnel.managed_fields_mut().clear();
            tunnel
                .annotations_mut()
                .remove(KUBECTL_LAST_APPLIED_ANNOTATION);
        })
        .default_backoff()
        .inspect(move |event| {
            if let Ok(event) = event {
                index_writer.apply_event(event);
                if let watcher::Event::Delete(t) = event {
                    memo_writer.forget(&t.namespace().unwrap_or_default(), &t.name_any());
                }
            }
        }),
    )
    .applied_objects();
    let mut context = Context::with_metrics(
        client.clone(),
        events,
        stores,
        metrics.clone(),
        index.clone(),
    );
    context.operator_namespace = Some(settings.operator_namespace.clone());
    context.memo = memo;
    // Asks connectors which configuration they run, beside the reconciler; a changed
    // answer reconciles that tunnel.
    let (remote_changed, remote_changed_rx) = futures::channel::mpsc::unbounded();
    let observer = settings.config_check_interval.map(|interval| {
        let remote = Arc::new(RemoteConfigChecks::every(interval));
        context.remote = Some(remote.clone());
        let (client, tunnels) = (client.clone(), tunnel_store.clone());
        tokio::spawn(async move { remote.observe(client, tunnels, remote_changed).await })
    });
    let context = Arc::new(context);

    let controller = Controller::for_stream(tunnel_stream, tunnel_store.clone());
    metrics.watch_tunnels(tunnel_store.clone());
    // Token Secrets carry no label of ours; their metadata is enough to notice
    // a rotation (and to skip re-reading a token that did not change). Only
    // the identity and resourceVersion are kept.
    let token_secrets_stream = reflector::reflector(
        token_secrets_writer,
        watcher(
            api_for::<PartialObjectMeta<Secret>>(&client, namespace),
            // The children's Secrets hold no token of the user's.
            watcher::Config::default()
                .labels(&unmanaged_selector())
                .any_semantic(),
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

    // ConfigMaps a rule may take a CA bundle from: their metadata only, to notice a
    // change (the bundle itself is read when a tunnel that names it is reconciled).
    let config_maps_stream = watcher(
        api_for::<PartialObjectMeta<ConfigMap>>(&client, namespace),
        watcher::Config::default()
            .labels(&unmanaged_selector())
            .any_semantic(),
    )
    .default_backoff()
    .touched_objects();
    let tunnels_for_config_maps = tunnel_store.clone();

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
        .watches_stream(config_maps_stream, move |config_map| {
            tunnels_using_config_map(&tunnels_for_config_maps, &config_map)
        })
        .watches_stream(service_stream, move |service| {
            index.tunnels_using(&ServiceRef {
                namespace: service.namespace().unwrap_or_default(),
                name: service.name_any(),
            })
        })
        .reconcile_all_on(recovered_rx)
        .reconcile_on(remote_changed_rx)
        .shutdown_on_signal()
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "controller event");
            }
        })
        .await;
    if let Some(observer) = observer {
        observer.abort();
    }
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
    fn a_ca_bundle_change_triggers_the_tunnels_whose_rules_name_it() {
        let with_ca = |namespace: &str, name: &str, kind: CaKind, source: &str| {
            let mut t = tunnel(namespace, name, "token");
            let reference = Some(crate::api::KeyRef {
                name: source.into(),
                key: "ca.crt".into(),
            });
            let ca = match kind {
                CaKind::ConfigMap => crate::api::CaPool {
                    config_map_key_ref: reference,
                    ..Default::default()
                },
                CaKind::Secret => crate::api::CaPool {
                    secret_key_ref: reference,
                    ..Default::default()
                },
            };
            t.spec.ingress[0]
                .origin_request
                .get_or_insert_with(Default::default)
                .ca_pool = Some(ca);
            t
        };
        let mut writer: Writer<SecureTunnel> = Writer::default();
        for t in [
            with_ca("apps", "a", CaKind::ConfigMap, "internal-ca"),
            with_ca("apps", "b", CaKind::Secret, "internal-ca"),
            with_ca("ops", "c", CaKind::ConfigMap, "internal-ca"),
            tunnel("apps", "d", "token"),
        ] {
            writer.apply_watcher_event(&watcher::Event::Apply(t));
        }
        let store = writer.as_reader();
        let config_map = PartialObjectMeta::<ConfigMap> {
            metadata: kube::api::ObjectMeta {
                name: Some("internal-ca".into()),
                namespace: Some("apps".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let names = |refs: Vec<ObjectRef<SecureTunnel>>| {
            let mut n: Vec<String> = refs.into_iter().map(|r| r.name).collect();
            n.sort();
            n
        };
        assert_eq!(names(tunnels_using_config_map(&store, &config_map)), ["a"]);
        assert_eq!(
            names(tunnels_using_secret(&store, &secret("apps", "internal-ca"))),
            ["b"]
        );
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
