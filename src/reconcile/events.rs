//! Events about tunnels, as events.k8s.io/v1 Events, from kube's own [`TunnelEvent`]
//! (`kube::runtime::events::Event`). A repeat of an event (same tunnel, type, reason and
//! action) within [`SERIES_WINDOW`] updates the first one's series
//! instead of creating another, as kube's `Recorder` does. Kept per recent event: its
//! name, count and time, not the Event itself; old entries are dropped at most once per
//! [`SWEEP_INTERVAL`], not at every publish. (kube's `Recorder` keeps each whole Event
//! and scans all of them on every publish: at 10,000 tunnels that was the operator's
//! largest heap consumer and a scan of every entry per Event.)

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event as TunnelEvent, EventType};
use kube::{Api, Client, Resource, ResourceExt};

use crate::api::SecureTunnel;

/// A repeat within this window joins the first Event's series (as kube's `Recorder`).
pub const SERIES_WINDOW: SignedDuration = SignedDuration::from_secs(6 * 60);
/// How often entries older than the window are dropped.
const SWEEP_INTERVAL: SignedDuration = SignedDuration::from_secs(60);

#[derive(Hash, PartialEq, Eq)]
struct Key {
    /// The tunnel's uid (namespace/name when it has none).
    regarding: Box<str>,
    type_: EventType,
    reason: Box<str>,
    action: Box<str>,
}

struct Series {
    name: Box<str>,
    count: i32,
    last: Timestamp,
}

#[derive(Default)]
struct Recent {
    by_key: HashMap<Key, Series>,
    last_sweep: Option<Timestamp>,
}

impl Recent {
    fn sweep(&mut self, now: Timestamp) {
        if self
            .last_sweep
            .is_some_and(|t| now.duration_since(t) < SWEEP_INTERVAL)
        {
            return;
        }
        self.by_key
            .retain(|_, s| now.duration_since(s.last) < SERIES_WINDOW);
        self.last_sweep = Some(now);
    }

    /// The Event this one repeats, if within the window: (its name, the next count).
    fn repeat_of(&self, key: &Key, now: Timestamp) -> Option<(Box<str>, i32)> {
        self.by_key
            .get(key)
            .filter(|s| now.duration_since(s.last) < SERIES_WINDOW)
            .map(|s| (s.name.clone(), s.count + 1))
    }
}

/// Publishes Events as this controller (and instance).
pub struct EventPublisher {
    client: Client,
    controller: String,
    instance: String,
    recent: Mutex<Recent>,
}

impl EventPublisher {
    /// `instance`: this replica (usually its pod name); the controller's name without one.
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Self {
        EventPublisher {
            client,
            controller: controller.to_string(),
            instance: instance.unwrap_or_else(|| controller.to_string()),
            recent: Mutex::default(),
        }
    }

    /// Creates the Event, or counts a repeat in the series of the Event it repeats.
    pub async fn publish(
        &self,
        tunnel: &SecureTunnel,
        event: &TunnelEvent,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let namespace = tunnel.namespace().unwrap_or_default();
        let key = Key {
            regarding: tunnel
                .uid()
                .unwrap_or_else(|| format!("{namespace}/{}", tunnel.name_any()))
                .into(),
            type_: event.type_,
            reason: event.reason.as_str().into(),
            action: event.action.as_str().into(),
        };
        let repeat = self.recent.lock().ok().and_then(|mut recent| {
            recent.sweep(now);
            recent.repeat_of(&key, now)
        });
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let (name, count) = match repeat {
            Some((name, count)) => {
                let series = serde_json::json!({
                    "series": EventSeries { count, last_observed_time: MicroTime(now) }
                });
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                    .await?;
                (name, count)
            }
            None => {
                let created = self.event(tunnel, event, &namespace, now);
                let name = created.metadata.name.clone().unwrap_or_default();
                api.create(&PostParams::default(), &created).await?;
                (name.into(), 1)
            }
        };
        if let Ok(mut recent) = self.recent.lock() {
            recent.by_key.insert(
                key,
                Series {
                    name,
                    count,
                    last: now,
                },
            );
        }
        Ok(())
    }

    fn event(
        &self,
        tunnel: &SecureTunnel,
        event: &TunnelEvent,
        namespace: &str,
        now: Timestamp,
    ) -> Event {
        Event {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_string(),
            ),
            event_time: Some(MicroTime(now)),
            regarding: Some(tunnel.object_ref(&())),
            metadata: ObjectMeta {
                namespace: Some(namespace.to_string()),
                name: Some(format!("{}.{:x}", tunnel.name_any(), now.as_nanosecond())),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            related: event.secondary.clone(),
            ..Event::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(reason: &str) -> Key {
        Key {
            regarding: "uid-1".into(),
            type_: EventType::Warning,
            reason: reason.into(),
            action: "Reconcile".into(),
        }
    }

    fn series(name: &str, count: i32, last: Timestamp) -> Series {
        Series {
            name: name.into(),
            count,
            last,
        }
    }

    #[test]
    fn a_repeat_within_the_window_joins_the_series_and_an_older_one_does_not() {
        let start = Timestamp::UNIX_EPOCH;
        let mut recent = Recent::default();
        recent
            .by_key
            .insert(key("ConnectorsNotReady"), series("home.1", 2, start));
        let later = |s: i64| start + SignedDuration::from_secs(s);
        assert_eq!(
            recent.repeat_of(&key("ConnectorsNotReady"), later(60)),
            Some(("home.1".into(), 3))
        );
        assert_eq!(recent.repeat_of(&key("InvalidSpec"), later(60)), None);
        assert_eq!(
            recent.repeat_of(&key("ConnectorsNotReady"), later(6 * 60)),
            None
        );
    }

    #[test]
    fn old_entries_are_swept_at_most_once_per_interval() {
        let start = Timestamp::UNIX_EPOCH;
        let at = |s: i64| start + SignedDuration::from_secs(s);
        let mut recent = Recent::default();
        recent.by_key.insert(key("A"), series("a", 1, start));
        recent.by_key.insert(key("B"), series("b", 1, at(300)));
        recent.sweep(at(350));
        assert_eq!(recent.by_key.len(), 2, "both within the window");
        recent.sweep(at(380));
        assert_eq!(
            recent.by_key.len(),
            2,
            "A is past the window, but the last sweep was under a minute ago"
        );
        recent.sweep(at(411));
        assert_eq!(recent.by_key.len(), 1, "A is past the window, B is not");
        assert!(recent.by_key.contains_key(&key("B")));
    }
}
