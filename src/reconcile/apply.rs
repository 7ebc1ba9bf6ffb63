//! Apply: for each desired child (in apply order), what exists; refuse to touch an object
//! this tunnel does not control; skip a child whose summary says it already holds every
//! field we set; create what does not exist; server-side apply the rest; remove the
//! optional children no longer wanted.
//!
//! A child the cache does not hold is created (`POST`), not read first: an
//! `AlreadyExists` answer costs one read, to check who controls the object, so a
//! foreign object is never taken over. Children are written in apply order, the
//! Deployment last, so a name conflict found on the way starts no connector.

use json_patch::Patch as JsonPatch;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::Client;
use serde_json::{json, Value};
use tracing::{debug, info, warn};

use super::cache::{version_of, ChildCache, ChildSummary, CreateEntry};
use super::live::LiveObject;
use crate::children::{Availability, ChildKind};
use crate::compact::ShortHash;
use crate::names::{child_name, APPLIED_HASH_ANNOTATION, FIELD_MANAGER};
use crate::{Error, Result};

fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn api(client: &Client, kind: ChildKind, namespace: &str) -> Api<LiveObject> {
    Api::namespaced_with(client.clone(), namespace, &kind.api_resource())
}

/// One desired child, by kind and name.
struct Child<'a> {
    kind: ChildKind,
    namespace: &'a str,
    name: &'a str,
    desired: &'a Value,
}

impl Child<'_> {
    fn describe(&self) -> String {
        format!("{} {}/{}", self.kind.kind(), self.namespace, self.name)
    }

    fn error(&self, source: kube::Error) -> Error {
        Error::Apply {
            object: self.describe(),
            source,
        }
    }

    /// The conflict, logged once, as the status will report it.
    fn conflict(&self) -> Applied {
        warn!(object = %self.describe(), "name taken by an object this tunnel does not control");
        Applied::Conflict(format!(
            "{} already exists and is not controlled by this SecureTunnel; rename or delete it",
            self.describe()
        ))
    }

    /// True when the child already holds every field we set: our applied hash (the
    /// desired state did not change), and the fields our manager owns still hash to it
    /// (nobody edited them). Fields others added (defaults, other managers) do not count.
    fn up_to_date(&self, current: &ChildSummary) -> bool {
        current.intact
            && current.has_applied_hash(
                self.desired["metadata"]["annotations"][APPLIED_HASH_ANNOTATION].as_str(),
            )
    }

    /// Creates the child; `None` when an object with its name already exists.
    async fn create(&self, client: &Client) -> Result<Option<LiveObject>> {
        let obj =
            LiveObject::from_json(self.desired.clone()).map_err(|source| Error::Serialize {
                what: "child object",
                source,
            })?;
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        match api(client, self.kind, self.namespace)
            .create(&params, &obj)
            .await
        {
            Ok(created) => Ok(Some(created)),
            Err(kube::Error::Api(e)) if e.code == 409 && e.reason == "AlreadyExists" => Ok(None),
            Err(source) => Err(self.error(source)),
        }
    }

    /// Turns our create entry in `managedFields` into an apply entry (or drops it beside
    /// one), so that the apply that follows removes the fields it no longer sets. The
    /// test operations make it a no-op failure (422) if the list changed meanwhile.
    async fn adopt_create_entry(
        &self,
        client: &Client,
        entry: CreateEntry,
    ) -> Result<std::result::Result<LiveObject, kube::Error>> {
        let at = format!("/metadata/managedFields/{}", entry.index);
        let change = if entry.beside_apply {
            json!({ "op": "remove", "path": at })
        } else {
            json!({ "op": "replace", "path": format!("{at}/operation"), "value": "Apply" })
        };
        let ops = json!([
            { "op": "test", "path": format!("{at}/manager"), "value": FIELD_MANAGER },
            { "op": "test", "path": format!("{at}/operation"), "value": "Update" },
            change,
        ]);
        let patch: JsonPatch = serde_json::from_value(ops).map_err(|source| Error::Serialize {
            what: "managedFields patch",
            source,
        })?;
        Ok(api(client, self.kind, self.namespace)
            .patch(
                self.name,
                &PatchParams::default(),
                &Patch::<()>::Json(patch),
            )
            .await)
    }

    /// Adopts our create entry, if there is one: from the cached summary, or, when another
    /// manager's write moved the entry since (a Deployment's status, written by its
    /// controller at once), from the object read again. The version the adopting patch
    /// made, if one was sent.
    async fn adopt(&self, client: &Client, entry: CreateEntry) -> Result<Option<ShortHash>> {
        match self.adopt_create_entry(client, entry).await? {
            Ok(adopted) => return Ok(Some(version_of(&adopted))),
            Err(kube::Error::Api(e)) if e.code == 422 => {
                debug!(object = %self.describe(), "managedFields changed; reading it again");
            }
            Err(source) => return Err(self.error(source)),
        }
        let current = api(client, self.kind, self.namespace)
            .get(self.name)
            .await
            .map_err(|source| self.error(source))?;
        let Some(entry) = CreateEntry::of(&current) else {
            return Ok(None);
        };
        let adopted = self.adopt_create_entry(client, entry).await?;
        adopted
            .map(|adopted| Some(version_of(&adopted)))
            .map_err(|source| self.error(source))
    }

    /// Applies the child, after adopting our create entry; with the version of the
    /// adopting patch, if one was sent.
    async fn apply(
        &self,
        client: &Client,
        create_entry: Option<CreateEntry>,
    ) -> Result<(LiveObject, Option<ShortHash>)> {
        let adopted = match create_entry {
            Some(entry) => self.adopt(client, entry).await?,
            None => None,
        };
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let stored = api(client, self.kind, self.namespace)
            .patch(self.name, &params, &Patch::Apply(self.desired))
            .await
            .map_err(|source| self.error(source))?;
        info!(object = %self.describe(), "applied");
        Ok((stored, adopted))
    }

    /// Writes the child unless it is up to date.
    async fn write(
        &self,
        client: &Client,
        current: Option<ChildSummary>,
        uid: &str,
    ) -> Result<Write> {
        let current = match current {
            Some(current) => current,
            None => match self.create(client).await? {
                Some(created) => {
                    info!(object = %self.describe(), "created");
                    return Ok(Write::Stored(ChildSummary::of(self.kind, &created), None));
                }
                // Someone else's, or ours and not yet seen by the watch: read it once.
                None => {
                    let existing = api(client, self.kind, self.namespace)
                        .get(self.name)
                        .await
                        .map_err(|source| self.error(source))?;
                    ChildSummary::of(self.kind, &existing)
                }
            },
        };
        if !current.is_controlled_by(uid) {
            return Ok(Write::Taken(self.conflict()));
        }
        if self.up_to_date(&current) {
            debug!(object = %self.describe(), "up to date");
            return Ok(Write::UpToDate);
        }
        let (stored, adopted) = self.apply(client, current.create_entry).await?;
        Ok(Write::Stored(ChildSummary::of(self.kind, &stored), adopted))
    }
}

/// What writing one child came to.
enum Write {
    /// What the API server answered to our create or apply, summarised; with the version
    /// of the patch that adopted our create entry just before, if one was sent.
    Stored(ChildSummary, Option<ShortHash>),
    UpToDate,
    /// The name is taken ([`Applied::Conflict`]).
    Taken(Applied),
}

/// What applying the children came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// Every child is as desired, except those of an integration's kinds that cannot be
    /// written here (not enabled, CRD missing, …): those are listed, and not written.
    Written {
        held_back: Vec<(ChildKind, Availability)>,
    },
    /// An object with a child's name exists and is not controlled by this tunnel: the
    /// children after it in apply order were not written.
    Conflict(String),
}

/// Brings every child to its desired state. Stops at the first object with a child's
/// name that this tunnel does not control; with the cache alone, nothing is written. A
/// child of an integration's kind that is not available is held back, and the rest goes
/// on.
pub async fn apply_children(
    client: &Client,
    cache: &ChildCache,
    tunnel_name: &str,
    namespace: &str,
    uid: &str,
    desired: &[(ChildKind, Value)],
) -> Result<Applied> {
    let mut children = Vec::with_capacity(desired.len());
    let mut held_back = Vec::new();
    for (kind, obj) in desired {
        if kind.integration().is_some() {
            let availability = cache.availability(*kind);
            if availability != Availability::Available {
                held_back.push((*kind, availability));
                continue;
            }
        }
        let name = text(obj, "/metadata/name");
        if text(obj, "/metadata/namespace").is_empty() {
            return Err(Error::MissingObjectKey("metadata.namespace"));
        }
        let child = Child {
            kind: *kind,
            namespace,
            name,
            desired: obj,
        };
        let current = cache.get(*kind, namespace, name);
        if current.as_ref().is_some_and(|c| !c.is_controlled_by(uid)) {
            return Ok(child.conflict());
        }
        children.push((child, current));
    }
    // In waves (see [`ChildKind::wave`]), the writes of one wave at once: a create costs
    // a round trip, and a tunnel's children were otherwise written one after another.
    // Every write of a wave ends (what was stored is remembered) before a failed write's
    // error is returned or a taken name stops the writes; the next wave starts after.
    for wave in children.chunk_by(|(a, _), (b, _)| a.kind.wave() == b.kind.wave()) {
        let writes = wave.iter().map(|(child, current)| async move {
            let before = cache.before_write(child.kind, namespace, child.name);
            Ok::<_, Error>(match child.write(client, current.clone(), uid).await? {
                Write::Stored(stored, adopted) => {
                    let before = before.and_ours(adopted);
                    cache.wrote(child.kind, namespace, child.name, before, stored);
                    None
                }
                Write::UpToDate => None,
                Write::Taken(conflict) => Some(conflict),
            })
        });
        let mut taken = None;
        for written in futures::future::join_all(writes).await {
            if let Some(conflict) = written? {
                taken.get_or_insert(conflict);
            }
        }
        if let Some(conflict) = taken {
            return Ok(conflict);
        }
    }
    let unwanted: Vec<ChildKind> = cache
        .kinds()
        .filter(|k| k.optional() && !desired.iter().any(|(d, _)| d == k))
        .collect();
    for kind in unwanted {
        remove_unwanted(client, cache, kind, tunnel_name, namespace, uid).await?;
    }
    Ok(Applied::Written { held_back })
}

/// Removes this tunnel's child of an optional kind the spec no longer wants (a
/// disruption budget after a scale-down to one replica): if, and only if, the cached
/// object carries the tunnel's instance label and is controlled by it. The delete is
/// guarded by the object's uid.
async fn remove_unwanted(
    client: &Client,
    cache: &ChildCache,
    kind: ChildKind,
    tunnel_name: &str,
    namespace: &str,
    uid: &str,
) -> Result<()> {
    let name = child_name(tunnel_name);
    let Some(stale) = cache.get(kind, namespace, &name) else {
        return Ok(());
    };
    if !stale.is_instance_of(tunnel_name) || !stale.is_controlled_by(uid) {
        return Ok(());
    }
    let what = format!("{} {namespace}/{name}", kind.kind());
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(stale.uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api(client, kind, namespace).delete(&name, &params).await {
        Ok(_) => {
            info!(object = %what, "deleted: no longer wanted");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(Error::Apply {
            object: what,
            source,
        }),
    }
}
