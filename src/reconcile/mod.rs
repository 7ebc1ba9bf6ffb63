//! One reconcile of one SecureTunnel, in steps: [`dereference`] (token, Services) →
//! validate (read from the tunnel index) → render → [`apply`] → [`update_status`]. What
//! to do between the steps is decided by pure functions ([`decide`], [`outcome`]).

pub mod apply;
pub mod cache;
pub mod context;
pub mod dereference;
pub mod events;
pub mod live;
pub mod memo;
pub mod remote;
pub mod update_status;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use tracing::{instrument, warn};

pub use context::{backoff_delay, Stores};

use context::Backoff;
use dereference::TokenCache;
use update_status::WrittenStatus;

use crate::api::conditions;
use crate::api::SecureTunnel;
use crate::children::{Availability, ChildKind};
use crate::index::TunnelIndex;
use crate::metrics::Metrics;
use crate::names::child_name;
use crate::render::{self, Dereferenced};
use crate::status::{desired_status, IntegrationOutcome, Verdict};
use crate::token::TunnelToken;
use crate::validate::origin::ServiceRef;
use crate::validate::{ValidatedSpec, ValidationErrors};
use crate::{Error, Result};
use apply::Applied;
use dereference::TokenProblem;
use memo::RenderSummary;

/// Shared state of the reconciler.
pub struct Context {
    pub client: Client,
    pub events: events::EventPublisher,
    pub stores: Stores,
    pub metrics: Arc<Metrics>,
    /// Each tunnel's spec, validated once per change (fed by the SecureTunnel watch).
    pub index: Arc<TunnelIndex>,
    /// The last render of each tunnel, by a fingerprint of its inputs.
    pub memo: Arc<memo::RenderMemo>,
    /// What connectors said of the configuration they run; `None`: never asked.
    pub remote: Option<Arc<remote::RemoteConfigChecks>>,
    /// The operator's namespace, whose pods the connectors' sandbox admits on the metrics
    /// port (for `remote`).
    pub operator_namespace: Option<String>,
    backoff: Backoff,
    tokens: TokenCache,
    written_status: WrittenStatus,
}

impl Context {
    pub fn new(client: Client, events: events::EventPublisher, stores: Stores) -> Self {
        Context::with_metrics(
            client,
            events,
            stores,
            Arc::new(Metrics::new()),
            Arc::default(),
        )
    }

    pub fn with_metrics(
        client: Client,
        events: events::EventPublisher,
        stores: Stores,
        metrics: Arc<Metrics>,
        index: Arc<TunnelIndex>,
    ) -> Self {
        Context {
            client,
            events,
            stores,
            metrics,
            index,
            memo: Arc::default(),
            remote: None,
            operator_namespace: None,
            backoff: Backoff::default(),
            tokens: TokenCache::default(),
            written_status: WrittenStatus::default(),
        }
    }
}

/// Periodic re-check of a healthy tunnel; changes arrive through watches.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// Re-check of a tunnel waiting on something the watches may not see (a token Secret
/// in a namespace outside the watch, a foreign object).
pub const BLOCKED_RECHECK: Duration = Duration::from_secs(5 * 60);

/// Re-check of a tunnel whose integration's watch has not listed yet.
pub const INTEGRATION_WAIT: Duration = Duration::from_secs(5);

/// What to do once the spec and the token are known.
#[derive(Debug, PartialEq)]
pub enum Decision<'a> {
    /// Apply nothing; report why, and come back after `requeue` (`None`: on a change).
    Block {
        reason: &'static str,
        message: String,
        requeue: Option<Duration>,
    },
    /// Render the children and apply them.
    Apply {
        spec: &'a ValidatedSpec,
        token: &'a TunnelToken,
    },
}

/// The spec is checked first (an invalid spec waits for an edit), then the token (a
/// problem with it is re-checked periodically: its Secret may live outside the watch),
/// then what only both together can tell.
pub fn decide<'a>(
    spec: &'a Result<ValidatedSpec, ValidationErrors>,
    token: &'a Result<TunnelToken, TokenProblem>,
) -> Decision<'a> {
    match (spec, token) {
        (Err(errors), _) => Decision::Block {
            reason: conditions::REASON_INVALID_SPEC,
            message: errors.summary(),
            requeue: None,
        },
        (Ok(_), Err(problem)) => Decision::Block {
            reason: problem.reason,
            message: problem.message.clone(),
            requeue: Some(BLOCKED_RECHECK),
        },
        (Ok(spec), Ok(token)) => match (spec.region, token.endpoint()) {
            // cloudflared exits with "region provided with a token that has an endpoint".
            (Some(region), Some(endpoint)) => Decision::Block {
                reason: conditions::REASON_INVALID_SPEC,
                message: format!(
                    "spec.connector.region: {:?} cannot be used with this token, which names the endpoint {endpoint:?} (cloudflared refuses both at once)",
                    region.as_str()
                ),
                requeue: None,
            },
            _ => Decision::Apply { spec, token },
        },
    }
}

/// The verdict for the status and the next action, after an apply.
pub fn outcome(applied: &Applied, tunnel_id: &str, rendered: &RenderSummary) -> (Verdict, Action) {
    match applied {
        Applied::Conflict(message) => (
            Verdict::Blocked {
                reason: conditions::REASON_NAME_CONFLICT,
                message: message.clone(),
            },
            Action::requeue(BLOCKED_RECHECK),
        ),
        Applied::Written { held_back } => {
            let integrations: Vec<IntegrationOutcome> = rendered
                .integrations
                .iter()
                .cloned()
                .map(|(kind, object, summary)| IntegrationOutcome {
                    kind,
                    availability: held_back
                        .iter()
                        .find(|(k, _)| *k == kind)
                        .map_or(Availability::Available, |(_, a)| *a),
                    object,
                    summary,
                })
                .collect();
            // An integration's kind may become available without any event of ours: its
            // CRD installed, its watch listed.
            let requeue = if held_back.iter().any(|(_, a)| *a == Availability::Pending) {
                INTEGRATION_WAIT
            } else if !held_back.is_empty() {
                BLOCKED_RECHECK
            } else {
                RESYNC_INTERVAL
            };
            (
                Verdict::Applied {
                    tunnel_id: tunnel_id.to_string(),
                    config_hash: rendered.config_hash.clone(),
                    unresolved: rendered.unresolved.clone(),
                    integrations,
                    remote_version: None,
                },
                Action::requeue(requeue),
            )
        }
    }
}

/// One reconcile, timed and counted in the metrics.
#[instrument(skip(tunnel, ctx), fields(namespace = tunnel.namespace().unwrap_or_default(), name = %tunnel.name_any()))]
pub async fn reconcile(tunnel: Arc<SecureTunnel>, ctx: Arc<Context>) -> Result<Action> {
    let started = std::time::Instant::now();
    let result = reconcile_once(tunnel, &ctx).await;
    ctx.metrics.observe(&result, started.elapsed());
    result
}

async fn reconcile_once(tunnel: Arc<SecureTunnel>, ctx: &Arc<Context>) -> Result<Action> {
    let namespace = tunnel
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let uid = tunnel
        .uid()
        .ok_or(Error::MissingObjectKey("metadata.uid"))?;
    let name = tunnel.name_any();
    let key = ObjectRef::from_obj(tunnel.as_ref());

    ctx.stores.wait_until_ready().await?;
    let token = dereference::read_token(
        &ctx.client,
        &ctx.stores.token_secrets,
        &ctx.tokens,
        &namespace,
        &tunnel.spec.token_secret_ref,
    )
    .await?;
    let checked = ctx.index.verdict(&tunnel);

    let (mut verdict, action) = match decide(&checked.spec, &token) {
        Decision::Block {
            reason,
            message,
            requeue,
        } => {
            warn!(reason, "not applying");
            let action = requeue.map_or_else(Action::await_change, Action::requeue);
            (Verdict::Blocked { reason, message }, action)
        }
        Decision::Apply { spec, token } => {
            let names = Names {
                name: &name,
                namespace: &namespace,
                uid: &uid,
            };
            apply_spec(ctx, &tunnel, spec, &checked.services, token, names).await?
        }
    };

    // The Deployment as just written, if it was; else as last seen.
    let rollout = ctx
        .stores
        .children
        .get(ChildKind::Deployment, &namespace, &child_name(&name))
        .and_then(|d| d.rollout);
    // What the observer last heard from a connector (see [`remote`]): no I/O here.
    if let (Verdict::Applied { remote_version, .. }, Some(checks)) = (&mut verdict, &ctx.remote) {
        if rollout.is_some_and(|r| r.ready() > 0) {
            *remote_version = checks.known(&namespace, &name);
        }
    }
    let status = desired_status(&tunnel, &verdict, rollout, Timestamp::now());
    update_status::write_status(
        &ctx.client,
        &ctx.events,
        &ctx.written_status,
        &tunnel,
        &namespace,
        status,
    )
    .await?;
    ctx.backoff.reset(&key);
    Ok(action)
}

/// The tunnel's name, namespace and uid, read once from its metadata.
struct Names<'a> {
    name: &'a str,
    namespace: &'a str,
    uid: &'a str,
}

/// Dereferences the rest of what the spec names (Services, CA bundles), renders, applies.
/// `referenced`: the Services the rules name, as the index listed them with the spec.
async fn apply_spec(
    ctx: &Context,
    tunnel: &SecureTunnel,
    spec: &ValidatedSpec,
    referenced: &[ServiceRef],
    token: &TunnelToken,
    names: Names<'_>,
) -> Result<(Verdict, Action)> {
    let Names {
        name,
        namespace,
        uid,
    } = names;
    let ca_bundles =
        match dereference::read_ca_bundles(&ctx.client, namespace, &spec.ca_sources).await? {
            Ok(bundles) => bundles,
            Err(problem) => {
                warn!(reason = problem.reason, "not applying");
                return Ok((
                    Verdict::Blocked {
                        reason: problem.reason,
                        message: problem.message,
                    },
                    Action::requeue(BLOCKED_RECHECK),
                ));
            }
        };
    // Those of the Services the rules name that exist.
    let services = dereference::read_services(&ctx.stores.services, referenced);
    // Nothing render reads has changed, and every child still holds what it asked for:
    // the steady state's no-op, without rendering.
    // Without a generation (never from an API server) a spec change could not be told.
    let fingerprint = tunnel.metadata.generation.map(|generation| {
        memo::fingerprint(&memo::Inputs {
            uid,
            generation,
            token_hash: token.hash(),
            services: referenced
                .iter()
                .map(|r| {
                    let version = services
                        .get(r)
                        .and_then(|s| s.metadata.resource_version.clone());
                    (format!("{}/{}", r.namespace, r.name), version)
                })
                .collect(),
            ca_bundles: &ca_bundles,
            operator_namespace: ctx.operator_namespace.as_deref(),
            integrations: ChildKind::ALL
                .iter()
                .filter(|k| k.integration().is_some())
                .map(|k| ctx.stores.children.availability(*k))
                .collect(),
        })
    });
    let child = child_name(name);
    if let Some((held_back, summary)) = fingerprint.as_ref().and_then(|fingerprint| {
        ctx.memo.reuse(namespace, name, fingerprint, |last| {
            last.still_applied(&ctx.stores.children, namespace, uid, &child)
        })
    }) {
        ctx.memo.hit();
        return Ok(outcome(
            &Applied::Written { held_back },
            token.tunnel_id(),
            &summary,
        ));
    }

    let deref = Dereferenced {
        token: Some(token.clone()),
        services,
        ca_bundles,
        operator_namespace: ctx.operator_namespace.clone(),
    };
    let children = render::render(tunnel, spec, &deref)?;
    for origin in &children.unresolved {
        warn!(%origin, "origin not opened in the sandbox");
    }
    let objects = children.objects()?;
    let applied = apply::apply_children(
        &ctx.client,
        &ctx.stores.children,
        name,
        namespace,
        uid,
        &objects,
    )
    .await?;
    let summary = RenderSummary::of(&children);
    match &applied {
        Applied::Written { held_back } => match fingerprint {
            Some(fingerprint) => ctx.memo.put(
                namespace,
                name,
                memo::Rendered::of(fingerprint, summary.clone(), &objects, held_back),
            ),
            None => ctx.memo.forget(namespace, name),
        },
        Applied::Conflict(_) => ctx.memo.forget(namespace, name),
    }
    Ok(outcome(&applied, token.tunnel_id(), &summary))
}

/// Backoff for transient errors; spec and token problems never get here. An API server
/// that asks for a pause (429 with `retryAfterSeconds`) gets at least that pause.
pub fn error_policy(tunnel: Arc<SecureTunnel>, error: &Error, ctx: Arc<Context>) -> Action {
    let backoff = ctx.backoff.next(ObjectRef::from_obj(tunnel.as_ref()));
    let delay = backoff.max(error.retry_after().unwrap_or_default());
    warn!(
        namespace = tunnel.namespace().unwrap_or_default(),
        name = %tunnel.name_any(),
        error = %error,
        label = error.metric_label(),
        retry_in_secs = delay.as_secs(),
        "reconcile failed"
    );
    Action::requeue(delay)
}

#[cfg(test)]
mod decide_tests {
    use super::*;
    use crate::test_support::token_string;

    fn token() -> TunnelToken {
        TunnelToken::parse(token_string("c2VjcmV0").as_bytes()).expect("token")
    }

    #[test]
    fn an_invalid_spec_blocks_until_it_changes_whatever_the_token() {
        let spec = Err(ValidationErrors::default());
        for token in [
            Ok(token()),
            Err(TokenProblem {
                reason: "TokenInvalid",
                message: "bad".into(),
            }),
        ] {
            assert!(matches!(
                decide(&spec, &token),
                Decision::Block {
                    reason: conditions::REASON_INVALID_SPEC,
                    requeue: None,
                    ..
                }
            ));
        }
    }

    #[test]
    fn a_token_problem_blocks_and_is_rechecked() {
        let t = SecureTunnel::test();
        let spec = crate::validate::validate("home", &t.spec);
        let token = Err(TokenProblem {
            reason: conditions::REASON_TOKEN_SECRET_MISSING,
            message: "Secret apps/x not found".into(),
        });
        assert_eq!(
            decide(&spec, &token),
            Decision::Block {
                reason: conditions::REASON_TOKEN_SECRET_MISSING,
                message: "Secret apps/x not found".into(),
                requeue: Some(BLOCKED_RECHECK),
            }
        );
    }

    #[test]
    fn a_region_with_a_token_for_another_endpoint_is_refused() {
        let mut t = SecureTunnel::test();
        t.spec.connector.region = Some(crate::api::Region::Us);
        let spec = crate::validate::validate("home", &t.spec);
        let fed = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!(
                r#"{{"a":"x","s":"eQ==","t":"{}","e":"fed"}}"#,
                crate::test_support::TUNNEL_ID
            ),
        );
        let fed_token = Ok(TunnelToken::parse(fed.as_bytes()).expect("token"));
        match decide(&spec, &fed_token) {
            Decision::Block {
                reason, message, ..
            } => {
                assert_eq!(reason, conditions::REASON_INVALID_SPEC);
                assert!(message.starts_with("spec.connector.region:"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decide(&spec, &Ok(token())),
            Decision::Apply { .. }
        ));
    }

    #[test]
    fn a_valid_spec_and_token_are_applied() {
        let t = SecureTunnel::test();
        let spec = crate::validate::validate("home", &t.spec);
        let token = Ok(token());
        assert!(matches!(decide(&spec, &token), Decision::Apply { .. }));
    }
}
