//! The Argo CD health check, run by a real Lua interpreter on SecureTunnels
//! in each state the operator reports.

use mlua::{Lua, LuaSerdeExt, Table};
use serde_json::{json, Value};

const HEALTH: &str = include_str!("../config/argocd/health.lua");

fn health(obj: Value) -> (String, String) {
    let lua = Lua::new();
    let value = lua.to_value(&obj).expect("object converts to Lua");
    lua.globals().set("obj", value).expect("set obj");
    let hs: Table = lua.load(HEALTH).eval().expect("the health check runs");
    (
        hs.get("status").expect("status"),
        hs.get("message").expect("message"),
    )
}

fn tunnel(generation: i64, observed: i64, conditions: Value) -> Value {
    json!({
        "apiVersion": "securetunnel.dev/v1alpha1", "kind": "SecureTunnel",
        "metadata": { "name": "home", "namespace": "apps", "generation": generation },
        "spec": {},
        "status": { "observedGeneration": observed, "conditions": conditions }
    })
}

fn conds(ready: (&str, &str), progressing: (&str, &str), degraded: (&str, &str)) -> Value {
    let c = |t: &str, (s, r): (&str, &str)| json!({ "type": t, "status": s, "reason": r, "message": format!("{t} is {r}") });
    json!([
        c("Ready", ready),
        c("Progressing", progressing),
        c("Degraded", degraded)
    ])
}

#[test]
fn each_state_maps_to_the_right_health() {
    let cases = [
        (
            json!({ "apiVersion": "securetunnel.dev/v1alpha1", "kind": "SecureTunnel", "metadata": { "name": "x", "generation": 1 }, "spec": {} }),
            "Progressing",
        ),
        (
            tunnel(
                1,
                1,
                conds(
                    ("True", "ConnectorsReady"),
                    ("False", "RolloutComplete"),
                    ("False", "AsExpected"),
                ),
            ),
            "Healthy",
        ),
        (
            tunnel(
                2,
                1,
                conds(
                    ("True", "ConnectorsReady"),
                    ("False", "RolloutComplete"),
                    ("False", "AsExpected"),
                ),
            ),
            "Progressing",
        ),
        (
            tunnel(
                1,
                1,
                conds(
                    ("False", "ConnectorsNotReady"),
                    ("True", "RollingOut"),
                    ("False", "AsExpected"),
                ),
            ),
            "Progressing",
        ),
        (
            tunnel(
                1,
                1,
                conds(
                    ("True", "ConnectorsReady"),
                    ("True", "RollingOut"),
                    ("False", "AsExpected"),
                ),
            ),
            "Progressing",
        ),
        (
            tunnel(
                1,
                1,
                conds(
                    ("False", "InvalidSpec"),
                    ("False", "Blocked"),
                    ("False", "AsExpected"),
                ),
            ),
            "Degraded",
        ),
        (
            tunnel(
                1,
                1,
                conds(
                    ("False", "TokenSecretMissing"),
                    ("False", "Blocked"),
                    ("True", "TokenSecretMissing"),
                ),
            ),
            "Degraded",
        ),
        (
            tunnel(
                1,
                1,
                conds(
                    ("False", "TokenInvalid"),
                    ("False", "Blocked"),
                    ("False", "AsExpected"),
                ),
            ),
            "Degraded",
        ),
        (
            tunnel(
                1,
                1,
                conds(
                    ("False", "NameConflict"),
                    ("False", "Blocked"),
                    ("False", "AsExpected"),
                ),
            ),
            "Degraded",
        ),
        (
            tunnel(
                1,
                1,
                conds(
                    ("False", "CAPoolMissing"),
                    ("False", "Blocked"),
                    ("False", "AsExpected"),
                ),
            ),
            "Degraded",
        ),
        (
            tunnel(
                1,
                1,
                conds(
                    ("True", "ConnectorsReady"),
                    ("False", "RolloutComplete"),
                    ("True", "UnresolvedOrigin"),
                ),
            ),
            "Degraded",
        ),
        (
            tunnel(
                1,
                1,
                conds(
                    ("True", "ConnectorsReady"),
                    ("False", "RolloutComplete"),
                    ("True", "ConnectorsUnavailable"),
                ),
            ),
            "Degraded",
        ),
        (
            tunnel(
                1,
                1,
                conds(
                    ("False", "ConnectorsNotReady"),
                    ("False", "ProgressDeadlineExceeded"),
                    ("True", "ProgressDeadlineExceeded"),
                ),
            ),
            "Degraded",
        ),
        (
            tunnel(
                1,
                1,
                conds(
                    ("False", "ConnectorsNotReady"),
                    ("False", "RolloutComplete"),
                    ("False", "AsExpected"),
                ),
            ),
            "Progressing",
        ),
    ];
    for (obj, want) in cases {
        let (status, message) = health(obj.clone());
        assert_eq!(status, want, "{obj}");
        assert!(!message.is_empty());
    }
    let (_, message) = health(tunnel(
        1,
        1,
        conds(
            ("False", "InvalidSpec"),
            ("False", "Blocked"),
            ("False", "AsExpected"),
        ),
    ));
    assert_eq!(
        message, "InvalidSpec: Ready is InvalidSpec",
        "the condition's reason and message reach Argo CD"
    );
}

#[test]
fn the_argocd_cm_patch_embeds_health_lua() {
    let patch = include_str!("../config/argocd/argocd-cm-health.yaml");
    let doc: serde_norway::Value = serde_norway::from_str(patch).expect("patch is YAML");
    let embedded = doc["data"]["resource.customizations.health.securetunnel.dev_SecureTunnel"]
        .as_str()
        .expect("the health key");
    assert_eq!(
        embedded, HEALTH,
        "config/argocd/argocd-cm-health.yaml is out of date with health.lua"
    );
}
