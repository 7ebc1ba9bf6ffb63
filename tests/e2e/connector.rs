//! The real cloudflared on what `render` produces, for every sample and render fixture:
//! `ingress validate` accepts the config with no unused key, `ingress rule URL` picks the
//! rule each URL was made for (and the fallback for anything else), and the Deployment's
//! own args start the connector: it reads the token file, loads the config, and answers
//! the probes' path on the probes' port.
//!
//! The connector runs in a network namespace of its own with only a loopback interface
//! (`unshare -n`): whatever it tries to reach (the edge, DNS, the update check) fails
//! without a packet leaving the machine.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use regex_syntax::hir::{Class, Hir, HirKind};
use serde_json::Value;

use crate::common::dashboard::{self, Verified};
use crate::support::{run_cmd, Env, Outcome};
use crate::Suite;

use crate::support::TUNNEL_ID;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files in `dir` whose names end with `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// Every input the connector is checked on: (name, file, services file): the samples
/// (with the preview Services) and the render fixtures (which carry their Services).
fn inputs() -> Vec<(String, PathBuf, Option<PathBuf>)> {
    let samples = root().join("config/samples");
    let services = samples.join("preview/services.yaml");
    let sample_inputs = files(&samples, ".yaml")
        .into_iter()
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .map(|p| {
            (
                format!("sample {}", file_name(&p)),
                p,
                Some(services.clone()),
            )
        });
    let fixture_inputs = files(&root().join("tests/fixtures/render"), ".input.yaml")
        .into_iter()
        .map(|p| (format!("fixture {}", file_name(&p)), p, None));
    sample_inputs.chain(fixture_inputs).collect()
}

/// What one input renders to, as cloudflared would see it.
struct Rendered {
    config_yaml: String,
    token: String,
    args: Vec<String>,
    mounts: Vec<(String, String)>,
    probe_path: String,
    probe_port: u16,
}

/// The token file every input is rendered with.
const TOKEN_FILE: &str = "tests/fixtures/example-token.txt";
/// The same tunnel's credentials file, as `cloudflared tunnel create` writes it.
const CREDENTIALS_FILE: &str = "tests/fixtures/example-credentials.json";

fn render(file: &Path, services: Option<&Path>, token_file: &str) -> Result<Vec<Rendered>, String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_securetunnel-operator"));
    cmd.arg("render").arg("-f").arg(file);
    if let Some(s) = services {
        cmd.arg("--services").arg(s);
    }
    cmd.arg("--token-file")
        .arg(root().join(token_file))
        .arg("--reveal-token");
    let yaml = run_cmd(&mut cmd, None)?;
    let docs: Vec<Value> = serde_norway::Deserializer::from_str(&yaml)
        .map(|d| serde::Deserialize::deserialize(d).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    fn of<'a>(docs: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
        docs.iter().filter(move |d| d["kind"] == kind)
    }
    let mut out = Vec::new();
    for deployment in of(&docs, "Deployment") {
        let name = deployment["metadata"]["name"].as_str().unwrap_or_default();
        let config = of(&docs, "ConfigMap")
            .find(|d| d["metadata"]["name"] == name)
            .ok_or(format!("no ConfigMap {name}"))?;
        let secret = of(&docs, "Secret")
            .find(|d| d["metadata"]["name"] == name)
            .ok_or(format!("no Secret {name}"))?;
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let token = match secret["stringData"]["token"].as_str() {
            Some(t) => t.to_string(),
            None => {
                use base64::Engine;
                let b = base64::engine::general_purpose::STANDARD
                    .decode(text(&secret["data"]["token"]))
                    .map_err(|e| format!("Secret {name} token: {e}"))?;
                String::from_utf8(b).map_err(|e| e.to_string())?
            }
        };
        let probe = &container["readinessProbe"]["httpGet"];
        let port = match &probe["port"] {
            Value::Number(n) => n.as_u64().unwrap_or(0) as u16,
            Value::String(named) => container["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"] == named.as_str())
                .and_then(|p| p["containerPort"].as_u64())
                .unwrap_or(0) as u16,
            _ => 0,
        };
        let volumes = deployment["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mounts = container["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let volume = volumes
                    .iter()
                    .find(|v| v["name"] == m["name"])
                    .cloned()
                    .unwrap_or_default();
                let kind = if volume["configMap"].is_object() {
                    "configMap"
                } else if volume["secret"].is_object() {
                    "secret"
                } else {
                    "other"
                };
                (text(&m["mountPath"]), kind.to_string())
            })
            .collect();
        out.push(Rendered {
            config_yaml: text(&config["data"]["config.yaml"]),
            token,
            args: container["args"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect(),
            mounts,
            probe_path: text(&probe["path"]),
            probe_port: port,
        });
    }
    if out.is_empty() {
        return Err(format!("{} renders no Deployment", file.display()));
    }
    Ok(out)
}

/// A string the regex matches (unanchored, as cloudflared matches paths): the shortest
/// walk through the pattern's syntax tree.
pub fn example_of(pattern: &str) -> Result<String, String> {
    fn walk(hir: &Hir, out: &mut String) {
        match hir.kind() {
            HirKind::Empty | HirKind::Look(_) => {}
            HirKind::Literal(l) => out.push_str(&String::from_utf8_lossy(&l.0)),
            HirKind::Class(Class::Unicode(c)) => {
                if let Some(r) = c.ranges().first() {
                    out.push(r.start());
                }
            }
            HirKind::Class(Class::Bytes(c)) => {
                if let Some(r) = c.ranges().first() {
                    out.push(char::from(r.start()));
                }
            }
            HirKind::Repetition(r) => {
                for _ in 0..r.min {
                    walk(&r.sub, out);
                }
            }
            HirKind::Capture(c) => walk(&c.sub, out),
            HirKind::Concat(parts) => parts.iter().for_each(|p| walk(p, out)),
            HirKind::Alternation(alts) => {
                if let Some(first) = alts.first() {
                    walk(first, out);
                }
            }
        }
    }
    let hir = regex_syntax::parse(pattern).map_err(|e| e.to_string())?;
    let mut out = String::new();
    walk(&hir, &mut out);
    Ok(out)
}

/// (URL, index of the rule it was made for) for every rule but the fallback.
fn urls_for(config_yaml: &str) -> Result<Vec<(String, usize)>, String> {
    let config: Value = serde_norway::from_str(config_yaml).map_err(|e| e.to_string())?;
    let rules = config["ingress"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for (i, rule) in rules.iter().enumerate().take(rules.len().saturating_sub(1)) {
        let host = match rule["hostname"].as_str() {
            None | Some("") | Some("*") => "any-host.example.net".to_string(),
            Some(h) => h.replace("*.", "match-test."),
        };
        let mut path = match rule["path"].as_str() {
            Some(p) if !p.is_empty() => example_of(p)?,
            _ => "/".to_string(),
        };
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        out.push((format!("https://{host}{path}"), i));
    }
    Ok(out)
}

fn cloudflared_bin(env: &Env) -> Result<&PathBuf, String> {
    env.cloudflared
        .as_ref()
        .ok_or_else(|| "E2E_CLOUDFLARED is not set".to_string())
}

/// Runs `script` with bash in a network namespace of its own (nothing but loopback,
/// which the script brings up), with cloudflared as `$0` and `args` as `$@`.
fn in_own_network(bin: &Path, script: &str, args: &[String]) -> Result<String, String> {
    run_cmd(
        Command::new("unshare")
            .args(["-n", "--", "bash", "-c", script])
            .arg(bin)
            .args(args),
        None,
    )
}

fn cloudflared_config(env: &Env, config: &Path, args: &[&str]) -> Result<String, String> {
    let bin = cloudflared_bin(env)?;
    run_cmd(
        Command::new("unshare")
            .args(["-n", "--"])
            .arg(bin)
            .args(["tunnel", "--config"])
            .arg(config)
            .args(args),
        None,
    )
}

fn validate(env: &Env, dir: &Path, r: &Rendered) -> Outcome {
    let config = dir.join("config.yaml");
    std::fs::write(&config, &r.config_yaml).map_err(|e| e.to_string())?;
    // `tunnel --config F ingress validate`: the other order prints usage and exits 0.
    let out = cloudflared_config(env, &config, &["ingress", "validate"])?;
    if out.lines().any(|l| l.trim() == "OK") && !out.contains("unused keys") {
        Ok(())
    } else {
        Err(format!(
            "cloudflared ingress validate said:\n{out}\nconfig.yaml:\n{}",
            r.config_yaml
        ))
    }
}

fn routes(env: &Env, dir: &Path, r: &Rendered) -> Outcome {
    let config = dir.join("config.yaml");
    std::fs::write(&config, &r.config_yaml).map_err(|e| e.to_string())?;
    let mut urls = urls_for(&r.config_yaml)?;
    let rules = urls.len();
    urls.push(("https://no-rule-matches.invalid/".to_string(), rules));
    let mut wrong = Vec::new();
    for (url, expected) in &urls {
        let out = cloudflared_config(env, &config, &["ingress", "rule", url])?;
        let matched = out
            .lines()
            .find_map(|l| l.strip_prefix("Matched rule #"))
            .and_then(|n| n.trim().parse::<usize>().ok());
        if matched != Some(*expected) {
            wrong.push(format!(
                "{url}: expected rule #{expected}, cloudflared said {matched:?}:\n{out}"
            ));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\nconfig.yaml:\n{}",
            wrong.join("\n"),
            r.config_yaml
        ))
    }
}

/// The Deployment's args, with each mount remapped to a local directory (written with the
/// rendered file), the metrics address on loopback and a local `--edge`; the image's
/// entrypoint is `cloudflared --no-autoupdate`.
fn local_args(dir: &Path, r: &Rendered) -> Result<Vec<String>, String> {
    let mut args: Vec<String> = vec!["--no-autoupdate".into()];
    for arg in &r.args {
        let mut a = arg.clone();
        for (mount, kind) in &r.mounts {
            if let Some(rest) = a.strip_prefix(mount.as_str()) {
                let local = dir.join(kind);
                std::fs::create_dir_all(&local).map_err(|e| e.to_string())?;
                let file = rest.trim_start_matches('/');
                let content = if kind == "secret" {
                    &r.token
                } else {
                    &r.config_yaml
                };
                std::fs::write(local.join(file), content).map_err(|e| e.to_string())?;
                a = local.join(file).display().to_string();
            }
        }
        if let Some(port) = a.strip_prefix("0.0.0.0:") {
            a = format!("127.0.0.1:{port}");
        }
        args.push(a);
    }
    if args.iter().any(|a| a.starts_with("/etc/")) {
        return Err(format!(
            "an arg points into the image, not at a mount: {args:?}"
        ));
    }
    // `--edge` belongs to `tunnel`: insert it after that word.
    let at = args
        .iter()
        .position(|a| a == "tunnel")
        .ok_or(format!("no `tunnel` in {args:?}"))?
        + 1;
    args.splice(at..at, ["--edge".to_string(), "127.0.0.1:7844".to_string()]);
    Ok(args)
}

/// The Deployment's args start cloudflared: it reads the token and the config and answers
/// the probe.
fn starts(env: &Env, dir: &Path, r: &Rendered) -> Outcome {
    let bin = cloudflared_bin(env)?;
    let args = local_args(dir, r)?;
    let log = dir.join("cloudflared.log");
    let script = format!(
        r#"ip link set lo up
"$0" "$@" >{log} 2>&1 &
pid=$!
answer=
for _ in $(seq 100); do
  if answer=$(curl -s --max-time 2 -w ' %{{http_code}}' http://127.0.0.1:{port}{path}); then break; fi
  kill -0 $pid 2>/dev/null || break
  sleep 0.2
done
kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null
echo "$answer""#,
        log = log.display(),
        port = r.probe_port,
        path = r.probe_path,
    );
    let answer = in_own_network(bin, &script, &args)?;
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let answer = answer.trim();
    // Without the edge no connection is up: /ready answers 503 with its JSON body.
    let (body, code) = answer.rsplit_once(' ').unwrap_or(("", answer));
    let ready: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let problems: Vec<String> = [
        (code != "503")
            .then(|| format!("{} answered {code:?} (expected 503: no edge)", r.probe_path)),
        (ready["readyConnections"] != 0).then(|| format!("no readyConnections in {body:?}")),
        (!log_text.contains(TUNNEL_ID))
            .then(|| "the log never names the tunnel ID: the token file was not read".to_string()),
        log_text
            .contains("error parsing")
            .then(|| "the config did not load".to_string()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\nargs: {args:?}\nlog:\n{log_text}",
            problems.join("; ")
        ))
    }
}

/// cloudflared's own metric series on /metrics of a real connector that is connected and
/// serving: the Deployment's args with `--protocol quic` and `--edge` at a stand-in for the
/// Cloudflare edge (e2e/cluster/cloudflared/fakeedge, E2E_FAKEEDGE), which refuses the first
/// registration, accepts the next, and sends two requests: one for the first rule's host (its
/// origin cannot be reached from the sandbox: an origin error) and one no rule matches (the
/// fallback's response). The connector must answer /ready with 200 once registered.
fn scrape(env: &Env, dir: &Path, r: &Rendered) -> Result<BTreeSet<String>, String> {
    let bin = cloudflared_bin(env)?;
    let edge = std::env::var_os("E2E_FAKEEDGE")
        .map(PathBuf::from)
        .ok_or("E2E_FAKEEDGE is not set (e2e/run.sh builds it: e2e/cluster.sh bin fakeedge)")?;
    let mut args = local_args(dir, r)?;
    if let Some(i) = args.iter().position(|a| a == "--protocol") {
        args.drain(i..(i + 2).min(args.len()));
    }
    args.retain(|a| !a.starts_with("--protocol="));
    let at = args
        .iter()
        .position(|a| a == "tunnel")
        .ok_or(format!("no `tunnel` in {args:?}"))?
        + 1;
    args.splice(at..at, ["--protocol".to_string(), "quic".to_string()]);
    let (routed, _) = urls_for(&r.config_yaml)?
        .into_iter()
        .next()
        .ok_or("the config has no rule but the fallback")?;
    // The probes' port is the metrics address's.
    let port = r.probe_port;
    let log = dir.join("cloudflared-edge.log");
    let edge_out = dir.join("fakeedge.out");
    let edge_log = dir.join("fakeedge.log");
    let ca = dir.join("edge.pem");
    let exposition = dir.join("metrics.txt");
    let script = format!(
        r#"ip link set lo up
{edge} -listen 127.0.0.1:7844 -ca-out {ca} -refuse-first -request '{routed}' -request 'https://no-rule-matches.invalid/' >{edge_out} 2>{edge_log} &
edge=$!
for _ in $(seq 50); do [ -s {ca} ] && break; sleep 0.1; done
SSL_CERT_FILE={ca} "$0" "$@" >{log} 2>&1 &
pid=$!
for _ in $(seq 150); do
  grep -q '^requests sent' {edge_out} && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.2
done
ready=$(curl -s --max-time 2 -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{port}/ready)
for _ in $(seq 25); do
  curl -s --max-time 2 -o {out} http://127.0.0.1:{port}/metrics &&
    grep -q '^cloudflared_tunnel_response_by_code' {out} && break
  sleep 0.2
done
kill -TERM $pid $edge 2>/dev/null; wait $pid $edge 2>/dev/null
echo "$ready""#,
        edge = edge.display(),
        ca = ca.display(),
        edge_out = edge_out.display(),
        edge_log = edge_log.display(),
        log = log.display(),
        out = exposition.display(),
    );
    let ready = in_own_network(bin, &script, &args)?;
    let text = std::fs::read_to_string(&exposition).unwrap_or_default();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    if ready.trim() != "200" || !read(&edge_out).contains("requests sent") {
        return Err(format!(
            "the connector did not connect to the stand-in edge and serve its requests \
             (/ready answered {:?}):\nedge:\n{}{}\nconnector log:\n{}",
            ready.trim(),
            read(&edge_out),
            read(&edge_log),
            read(&log)
        ));
    }
    Ok(dashboard::cloudflared_own(&dashboard::exposition_names(
        &text,
    )))
}

/// The scrape against tests/fixtures/metrics/cloudflared.txt, which the dashboard test reads:
/// every name listed as `scraped` is served, and every served name is listed.
fn metrics_listed(env: &Env, dir: &Path, r: &Rendered) -> Outcome {
    let live = scrape(env, dir, r)?;
    let listed = dashboard::metric_list(dashboard::CLOUDFLARED_METRICS);
    let missing: Vec<&String> = listed
        .iter()
        .filter(|(n, v)| **v == Verified::Scraped && !live.contains(*n))
        .map(|(n, _)| n)
        .collect();
    let unlisted: Vec<&String> = live.iter().filter(|n| !listed.contains_key(*n)).collect();
    if missing.is_empty() && unlisted.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} does not match this cloudflared: listed as scraped but not served: {missing:?}; \
         served but not listed: {unlisted:?}. Update the list (and the dashboard if a name it \
         uses is gone); this connector served:\n{}",
        dashboard::CLOUDFLARED_METRICS,
        live.iter().cloned().collect::<Vec<_>>().join("\n")
    ))
}

/// Each `source FILE:LINE` of tests/fixtures/metrics/cloudflared.txt names, at that line of
/// the cloudflared module this suite built, the registration of that metric.
fn metric_sources() -> Outcome {
    let gomod = std::fs::read_to_string(root().join("e2e/cluster/cloudflared/go.mod"))
        .map_err(|e| e.to_string())?;
    let version = gomod
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("github.com/cloudflare/cloudflared ")
                .and_then(|rest| rest.split_whitespace().next())
        })
        .ok_or("e2e/cluster/cloudflared/go.mod requires no github.com/cloudflare/cloudflared")?;
    let cache = run_cmd(Command::new("go").args(["env", "GOMODCACHE"]), None)?;
    let module =
        PathBuf::from(cache.trim()).join(format!("github.com/cloudflare/cloudflared@{version}"));
    let mut wrong = Vec::new();
    let mut cited = 0;
    for (name, verified) in dashboard::metric_list(dashboard::CLOUDFLARED_METRICS) {
        let Verified::Source(cite) = verified else {
            continue;
        };
        cited += 1;
        let Some((file, line)) = cite.split_once(':') else {
            wrong.push(format!("{name}: {cite:?} is not FILE:LINE"));
            continue;
        };
        let text = std::fs::read_to_string(module.join(file))
            .map_err(|e| format!("{}: {e}", module.join(file).display()))?;
        let at = line
            .parse::<usize>()
            .ok()
            .and_then(|n| text.lines().nth(n.saturating_sub(1)))
            .unwrap_or_default();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        let short = at
            .trim()
            .strip_prefix("Name:")
            .map(|v| v.trim().trim_end_matches(',').trim_matches('"'))
            .unwrap_or_default();
        if short.is_empty() || !family.ends_with(short) {
            wrong.push(format!("{name}: {cite} reads {:?}", at.trim()));
        }
    }
    if cited == 0 {
        return Err("no source citation to check".into());
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("in {}:\n{}", module.display(), wrong.join("\n")))
    }
}

/// The first sample, rendered with the credentials file in place of the token: the
/// Secret child holds a token (cloudflared's `--token-file` reads nothing else), and the
/// connector starts with it.
fn credentials_start(env: &Env) -> Outcome {
    let (_, file, services) = inputs().into_iter().next().ok_or("no sample")?;
    let rendered = render(&file, services.as_deref(), CREDENTIALS_FILE)?;
    let r = rendered.first().ok_or("nothing rendered")?;
    if r.token.trim_start().starts_with('{') {
        return Err("the Secret child holds the credentials file, not a token".to_string());
    }
    let fields = |token: &str| -> Result<Value, String> {
        use base64::Engine;
        let json = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .map_err(|e| format!("not base64: {e}"))?;
        serde_json::from_slice(&json).map_err(|e| e.to_string())
    };
    let expected = std::fs::read_to_string(root().join(TOKEN_FILE)).map_err(|e| e.to_string())?;
    let (got, want) = (fields(&r.token)?, fields(&expected)?);
    if got != want {
        return Err(format!(
            "the token made from the credentials file carries other facts than the tunnel's token: {got} vs {want}"
        ));
    }
    let dir = env.scratch.join("connector-credentials");
    let _ = std::fs::create_dir_all(&dir);
    starts(env, &dir, r)
}

pub fn checks(env: &Env, suite: &mut Suite) {
    if env.cloudflared.is_none() {
        suite.skip(
            "connector: the real cloudflared",
            "E2E_CLOUDFLARED is not set (e2e/run.sh builds it)",
        );
        return;
    }
    let mut scraped = false;
    for (name, file, services) in inputs() {
        let rendered = match render(&file, services.as_deref(), TOKEN_FILE) {
            Ok(r) => r,
            Err(e) => {
                suite.record(&format!("connector: {name} renders"), Err(e));
                continue;
            }
        };
        for (i, r) in rendered.iter().enumerate() {
            let dir = env.scratch.join(format!(
                "connector-{}-{i}",
                file.file_stem().unwrap_or_default().to_string_lossy()
            ));
            let _ = std::fs::create_dir_all(&dir);
            suite.record(
                &format!("connector: {name}: cloudflared ingress validate accepts config.yaml"),
                validate(env, &dir, r),
            );
            suite.record(
                &format!("connector: {name}: cloudflared routes each URL to its rule"),
                routes(env, &dir, r),
            );
            suite.record(&format!("connector: {name}: the Deployment's args start cloudflared and answer the probe"), starts(env, &dir, r));
            if !scraped {
                scraped = true;
                suite.record(
                    &format!("connector: {name}: connected to a stand-in edge and serving, the connector is ready and its /metrics serves every series {} lists as scraped, and no other (the Grafana dashboard's names are checked against that list)", dashboard::CLOUDFLARED_METRICS),
                    metrics_listed(env, &dir, r),
                );
            }
        }
    }
    suite.record(
        "connector: a credentials file given for the token: cloudflared starts with the token it becomes, and reads the tunnel ID",
        credentials_start(env),
    );
    suite.record(
        &format!(
            "connector: each `source FILE:LINE` in {} is that metric's registration in cloudflared's source",
            dashboard::CLOUDFLARED_METRICS
        ),
        metric_sources(),
    );
}
