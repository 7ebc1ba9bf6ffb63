//! Leader election on a `coordination.k8s.io/v1` Lease, so that two
//! replicas of the operator never reconcile at once. The replica holding a
//! fresh Lease runs the controller; the others wait and take over when it
//! expires. Losing the Lease stops the controller, and the replica stands
//! by again in the same process.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};
use tracing::{info, warn};

use crate::{Error, Result};

/// How the Lease is held.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// A Lease not renewed for this long is free to take.
    pub lease_duration: Duration,
    /// How often the holder renews, and a standby retries.
    pub retry_period: Duration,
}

impl LeaseSettings {
    pub fn new(namespace: String, name: String, identity: String) -> Self {
        LeaseSettings {
            namespace,
            name,
            identity,
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What to do with the Lease as found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it, or the holder let it expire: take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds a fresh Lease: wait.
    Standby { holder: String },
}

/// Decides from the Lease's spec alone (pure, for tests).
pub fn decide(
    spec: Option<&LeaseSpec>,
    identity: &str,
    now: Timestamp,
    default_duration: Duration,
) -> Decision {
    let Some(spec) = spec else {
        return Decision::Acquire;
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == identity {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::Acquire;
    }
    let duration = spec
        .lease_duration_seconds
        .map(|s| SignedDuration::from_secs(i64::from(s)))
        .unwrap_or_else(|| {
            SignedDuration::try_from(default_duration).unwrap_or(SignedDuration::from_secs(15))
        });
    match spec.renew_time.as_ref() {
        Some(MicroTime(renewed))
            if renewed
                .saturating_add(duration)
                .map_or(true, |expiry| expiry > now) =>
        {
            Decision::Standby { holder }
        }
        _ => Decision::Acquire,
    }
}

pub struct LeaderElection {
    api: Api<Lease>,
    settings: LeaseSettings,
}

fn conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl LeaderElection {
    pub fn new(client: Client, settings: LeaseSettings) -> Self {
        LeaderElection {
            api: Api::namespaced(client, &settings.namespace),
            settings,
        }
    }

    fn lease_spec(
        &self,
        previous: Option<&LeaseSpec>,
        now: Timestamp,
        acquiring: bool,
    ) -> LeaseSpec {
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.settings.identity.clone()),
            lease_duration_seconds: i32::try_from(self.settings.lease_duration.as_secs()).ok(),
            acquire_time: if acquiring {
                Some(MicroTime(now))
            } else {
                previous.and_then(|p| p.acquire_time.clone())
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if acquiring && previous.is_some() {
                transitions + 1
            } else {
                transitions
            }),
            ..Default::default()
        }
    }

    /// One round: returns whether this replica holds the Lease afterwards.
    /// Writes are guarded by the Lease's resourceVersion, so two replicas
    /// racing for an expired Lease cannot both win.
    pub async fn try_acquire_or_renew(&self) -> Result<bool> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.settings.name).await?;
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.settings.identity,
            now,
            self.settings.lease_duration,
        );
        let acquiring = match &decision {
            Decision::Standby { .. } => return Ok(false),
            Decision::Acquire => true,
            Decision::Renew => false,
        };
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.settings.name.clone()),
                        namespace: Some(self.settings.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(self.lease_spec(None, now, true)),
                };
                self.api
                    .create(&PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
            Some(mut lease) => {
                lease.spec = Some(self.lease_spec(lease.spec.as_ref(), now, acquiring));
                self.api
                    .replace(&self.settings.name, &PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => {
                if acquiring {
                    info!(identity = %self.settings.identity, lease = %self.settings.name, "acquired leadership");
                }
                Ok(true)
            }
            // Someone else wrote first.
            Err(e) if conflict(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives the Lease up so a standby takes over at once (on shutdown).
    pub async fn release(&self) -> Result<()> {
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            return Ok(());
        };
        let ours = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(&self.settings.identity);
        if !ours {
            return Ok(());
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
        }
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if conflict(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits for leadership (or `stop`, while waiting), then runs the future `work()`
    /// makes while renewing. Returns when that future ends (releasing the Lease), or on
    /// `stop` while standing by. When the Lease cannot be renewed for a whole lease
    /// duration (the API server unreachable, say), or another replica took it, the
    /// work is dropped and this replica stands by again: it never reconciles without a
    /// fresh Lease, and it recovers without a process restart.
    pub async fn run<W, F, S>(&self, mut work: W, stop: S) -> Result<()>
    where
        W: FnMut() -> F,
        F: Future<Output = ()>,
        S: Future<Output = ()>,
    {
        tokio::pin!(stop);
        loop {
            if !self.wait_for_leadership(&mut stop).await {
                return Ok(());
            }
            match self.lead(work()).await {
                Ok(()) => return Ok(()),
                Err(e) => warn!(error = %e, "stepped down; standing by for the Lease again"),
            }
        }
    }

    /// Retries until this replica holds the Lease (true) or `stop` resolves (false).
    async fn wait_for_leadership<S>(&self, stop: &mut std::pin::Pin<&mut S>) -> bool
    where
        S: Future<Output = ()>,
    {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return true,
                Ok(false) => {}
                Err(e) => warn!(error = %e, "could not read or write the leader Lease"),
            }
            tokio::select! {
                () = stop.as_mut() => return false,
                () = tokio::time::sleep(self.settings.retry_period) => {}
            }
        }
    }

    /// Runs `work` and the renewals side by side; `Ok` when `work` ends, and
    /// `Err(LostLeadership)` when the Lease is lost (and `work` dropped). A renewal that
    /// hangs (an API server waiting on etcd holds requests rather than failing them)
    /// neither stops `work` nor outlives the Lease it would renew.
    async fn lead<F>(&self, work: F) -> Result<()>
    where
        F: Future<Output = ()>,
    {
        let renewing = async {
            let period = self.settings.retry_period;
            let mut last_renewal = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(period).await;
                // A slow answer still counts while the Lease it renews is fresh.
                let left = self
                    .settings
                    .lease_duration
                    .saturating_sub(last_renewal.elapsed())
                    .max(period);
                let error = match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                    Ok(Ok(true)) => {
                        last_renewal = tokio::time::Instant::now();
                        continue;
                    }
                    Ok(Ok(false)) => return Error::LostLeadership,
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => format!("no answer within {} ms", left.as_millis()),
                };
                warn!(error, "could not renew the leader Lease");
                if last_renewal.elapsed() >= self.settings.lease_duration {
                    return Error::LostLeadership;
                }
            }
        };
        tokio::select! {
            () = work => {
                if let Err(e) = self.release().await {
                    warn!(error = %e, "could not release the leader Lease");
                }
                Ok(())
            }
            lost = renewing => Err(lost),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("time")
    }

    fn held_by(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(at(renewed))),
            ..Default::default()
        }
    }

    #[test]
    fn a_missing_or_empty_lease_is_taken() {
        let d = Duration::from_secs(15);
        assert_eq!(decide(None, "me", at(100), d), Decision::Acquire);
        let released = LeaseSpec::default();
        assert_eq!(decide(Some(&released), "me", at(100), d), Decision::Acquire);
    }

    #[test]
    fn our_own_lease_is_renewed_even_if_late() {
        assert_eq!(
            decide(
                Some(&held_by("me", 0)),
                "me",
                at(100),
                Duration::from_secs(15)
            ),
            Decision::Renew
        );
    }

    #[test]
    fn a_fresh_lease_of_another_replica_is_respected_until_it_expires() {
        let d = Duration::from_secs(15);
        let lease = held_by("other", 100);
        assert_eq!(
            decide(Some(&lease), "me", at(110), d),
            Decision::Standby {
                holder: "other".into()
            }
        );
        assert_eq!(
            decide(Some(&lease), "me", at(114), d),
            Decision::Standby {
                holder: "other".into()
            }
        );
        assert_eq!(decide(Some(&lease), "me", at(115), d), Decision::Acquire);
        let never_renewed = LeaseSpec {
            holder_identity: Some("other".into()),
            ..Default::default()
        };
        assert_eq!(
            decide(Some(&never_renewed), "me", at(115), d),
            Decision::Acquire
        );
    }

    use http::{Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::{json, Value};

    /// Answers the election's requests from a script of (method, reply status, reply body),
    /// and returns the bodies it was sent.
    async fn election_against(
        script: Vec<(&'static str, u16, Value)>,
    ) -> (Result<bool>, Vec<Value>) {
        let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(mock, "ops");
        let election = LeaderElection::new(
            client,
            LeaseSettings::new("ops".into(), "securetunnel-operator".into(), "pod-a".into()),
        );
        let server = tokio::spawn(async move {
            let mut sent = Vec::new();
            for (method, status, reply) in script {
                let (request, send) = handle.next_request().await.expect("a request");
                assert_eq!(request.method().as_str(), method);
                assert!(request
                    .uri()
                    .path()
                    .starts_with("/apis/coordination.k8s.io/v1/namespaces/ops/leases"));
                assert!(crate::rbac::allows(
                    crate::rbac::LEADER_ELECTION,
                    request.method().as_str(),
                    request.uri().path(),
                    request.uri().query().unwrap_or("")
                ));
                let bytes = request.into_body().collect_bytes().await.expect("body");
                if !bytes.is_empty() {
                    sent.push(serde_json::from_slice(&bytes).expect("json"));
                }
                let body = serde_json::to_vec(&reply).expect("reply");
                send.send_response(
                    Response::builder()
                        .status(StatusCode::from_u16(status).expect("status"))
                        .body(Body::from(body))
                        .expect("response"),
                );
            }
            sent
        });
        let result = election.try_acquire_or_renew().await;
        drop(election);
        (result, server.await.expect("script"))
    }

    fn not_found() -> Value {
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found" })
    }

    fn lease(holder: &str, renewed: &str) -> Value {
        json!({ "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": { "name": "securetunnel-operator", "namespace": "ops", "resourceVersion": "7" },
                "spec": { "holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renewed, "leaseTransitions": 2 } })
    }

    #[tokio::test(start_paused = true)]
    async fn work_goes_on_while_a_renewal_hangs_and_stops_once_the_lease_expires() {
        // An API server that never answers (etcd down behind it).
        let (mock, _handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let election = LeaderElection::new(
            Client::new(mock, "ops"),
            LeaseSettings::new("ops".into(), "securetunnel-operator".into(), "pod-a".into()),
        );
        let ticks = std::sync::atomic::AtomicU32::new(0);
        let work = async {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        };
        let led = tokio::time::timeout(Duration::from_secs(60), election.lead(work)).await;
        assert!(
            matches!(led, Ok(Err(Error::LostLeadership))),
            "the Lease, not renewed for its duration, is given up: {led:?}"
        );
        let ticks = ticks.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            ticks >= 13,
            "the work went on while the renewal hung: {ticks} ticks"
        );
    }

    #[tokio::test]
    async fn a_missing_lease_is_created_with_us_as_holder() {
        let (won, sent) = election_against(vec![
            ("GET", 404, not_found()),
            ("POST", 201, lease("pod-a", "2026-11-25T00:00:00.000000Z")),
        ])
        .await;
        assert!(won.expect("no error"));
        assert_eq!(sent[0]["spec"]["holderIdentity"], "pod-a");
        assert_eq!(sent[0]["spec"]["leaseDurationSeconds"], 15);
    }

    #[tokio::test]
    async fn a_fresh_lease_of_another_replica_is_not_touched() {
        let fresh = Timestamp::now().to_string();
        let (won, sent) = election_against(vec![("GET", 200, lease("pod-b", &fresh))]).await;
        assert!(!won.expect("no error"));
        assert!(sent.is_empty(), "a standby writes nothing");
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over_guarded_by_its_resource_version() {
        let (won, sent) = election_against(vec![
            ("GET", 200, lease("pod-b", "2020-01-01T00:00:00.000000Z")),
            ("PUT", 200, lease("pod-a", "2026-11-25T00:00:00.000000Z")),
        ])
        .await;
        assert!(won.expect("no error"));
        assert_eq!(
            sent[0]["metadata"]["resourceVersion"], "7",
            "optimistic concurrency"
        );
        assert_eq!(sent[0]["spec"]["holderIdentity"], "pod-a");
        assert_eq!(sent[0]["spec"]["leaseTransitions"], 3);
    }

    #[tokio::test]
    async fn losing_the_race_for_an_expired_lease_is_not_an_error() {
        let conflict = json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Conflict", "code": 409, "message": "modified" });
        let (won, _) = election_against(vec![
            ("GET", 200, lease("pod-b", "2020-01-01T00:00:00.000000Z")),
            ("PUT", 409, conflict),
        ])
        .await;
        assert!(!won.expect("a conflict means someone else won"));
    }
}
