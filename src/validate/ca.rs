//! The CA bundles of the rules' `originRequest.caPool`: each ConfigMap or Secret they name
//! once, with the keys used, and where the pods see it.

use std::collections::BTreeSet;

use super::fields::check_object_name;
use super::ValidationErrors;
use crate::api::{CaPool, KeyRef};

/// Where the connector pods see the CA bundles: `<CA_DIR>/<source index>/<key>`.
pub const CA_DIR: &str = "/etc/cloudflared/ca";

/// The kind of object that holds a CA bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CaKind {
    ConfigMap,
    Secret,
}

impl CaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CaKind::ConfigMap => "ConfigMap",
            CaKind::Secret => "Secret",
        }
    }
}

/// One ConfigMap or Secret (in the tunnel's namespace) that the rules take CA bundles from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaSource {
    pub kind: CaKind,
    pub name: String,
    /// The keys the rules use, each a file in the mount.
    pub keys: BTreeSet<String>,
    /// The directory the pods mount it at.
    pub mount_path: String,
    /// The pod volume's name.
    pub volume: String,
}

/// One key of one source: (kind, name, key).
pub type CaKey = (CaKind, String, String);

impl CaSources {
    /// Every (kind, name, key) the rules use, in source order.
    pub fn keys(&self) -> impl Iterator<Item = CaKey> + '_ {
        self.0.iter().flat_map(|s| {
            s.keys
                .iter()
                .map(move |k| (s.kind, s.name.clone(), k.clone()))
        })
    }
}

/// Every source, in order of first use, as the rules name them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaSources(pub Vec<CaSource>);

impl CaSources {
    /// Adds the rule's `caPool` at `path`; the file cloudflared reads, when it is valid.
    pub fn add(&mut self, path: &str, ca: &CaPool, errs: &mut ValidationErrors) -> Option<String> {
        let (kind, reference) = match (&ca.config_map_key_ref, &ca.secret_key_ref) {
            (Some(r), None) => (CaKind::ConfigMap, r),
            (None, Some(r)) => (CaKind::Secret, r),
            _ => {
                errs.report(
                    path,
                    "needs exactly one of configMapKeyRef and secretKeyRef",
                );
                return None;
            }
        };
        let field = match kind {
            CaKind::ConfigMap => "configMapKeyRef",
            CaKind::Secret => "secretKeyRef",
        };
        if !check_ref(&format!("{path}.{field}"), reference, errs) {
            return None;
        }
        let index = match self
            .0
            .iter()
            .position(|s| s.kind == kind && s.name == reference.name)
        {
            Some(i) => i,
            None => {
                let i = self.0.len();
                self.0.push(CaSource {
                    kind,
                    name: reference.name.clone(),
                    keys: BTreeSet::new(),
                    mount_path: format!("{CA_DIR}/{i}"),
                    volume: format!("ca-{i}"),
                });
                i
            }
        };
        let source = &mut self.0[index];
        source.keys.insert(reference.key.clone());
        Some(format!("{}/{}", source.mount_path, reference.key))
    }
}

fn check_ref(path: &str, r: &KeyRef, errs: &mut ValidationErrors) -> bool {
    let mut ok = true;
    if r.name.is_empty() {
        errs.report(format!("{path}.name"), "must name a ConfigMap or Secret");
        ok = false;
    } else if let Err(e) = check_object_name(&r.name) {
        errs.report(format!("{path}.name"), e);
        ok = false;
    }
    if r.key.is_empty()
        || r.key.len() > 253
        || !r
            .key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    {
        errs.report(
            format!("{path}.key"),
            format!(
                "{:?} is not a valid key (letters, digits, '-', '_', '.')",
                r.key
            ),
        );
        ok = false;
    }
    ok
}
