//! deploy/ and docs/configuration.md agree with the binaries, without Docker or a cluster:
//! every YAML file parses; the kustomizations resolve; every image is ours (one name) or a
//! pinned third-party tag; every flag and environment variable given to one of our
//! containers exists for that binary; ports, probes, service URLs, Secret and ConfigMap
//! keys, HPAs, PDBs and NetworkPolicies fit together. The binaries' flags come from
//! `samskab config-reference --json`, generated from the clap definitions.
//!
//! The Kubernetes manifests are also held to least privilege (issue 15): each component
//! speaks mutual TLS with a cert-manager certificate of the internal CA for its own name,
//! mounted so that renewals reach it; connects to PostgreSQL as its own managed role over
//! TLS verified against the cluster's CA; reads its own Secrets only (its own master key);
//! keeps its erasure ledger in a cluster apart from its database; and sends and receives
//! only what it needs (the gateway alone reaches the internet, never a private range).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_samskab");
/// The one image of ours (its last path segment; registry and tag vary).
const OUR_IMAGE: &str = "samskab";
/// Keys of the Secret that CloudNativePG creates for a Cluster `<name>` as `<name>-app`.
const CNPG_APP_KEYS: &[&str] = &["username", "password", "host", "port", "dbname", "uri", "jdbc-uri", "pgpass"];
/// Keys of the Secret `<name>-ca` of a CloudNativePG Cluster: its CA, key included.
const CNPG_CA_KEYS: &[&str] = &["ca.crt", "ca.key"];
/// Keys of a `kubernetes.io/basic-auth` Secret (a managed role's password).
const BASIC_AUTH_KEYS: &[&str] = &["username", "password"];
/// Keys of the Secret a cert-manager Certificate writes.
const CERT_MANAGER_KEYS: &[&str] = &["tls.crt", "tls.key", "ca.crt"];
/// What the gateway's egress to the internet must leave out: private, shared (CGNAT),
/// link-local and loopback ranges, so that a webhook aimed inside the cluster or the
/// network around it is dropped.
const PRIVATE_V4: &[&str] =
    &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8"];
const PRIVATE_V6: &[&str] = &["fc00::/7", "fe80::/10", "::1/128"];
/// The ports notify may reach outside the cluster: an SMTP relay's (SMTP, SMTPS,
/// submission) and https (an SMS provider, browsers' push services).
const NOTIFY_PORTS: &[u64] = &[25, 443, 465, 587];
/// The components deployed on their own (each a Deployment and a compose service).
const DEPLOYED: &[&str] = &["gateway", "booking", "carehome", "volunteer", "notify"];

/// The components with a database schema of their own that `samskab migrate` creates
/// (notify listed here too, whether or not `samskab::ops::COMPONENTS` names it yet).
fn db_components() -> BTreeSet<&'static str> {
    samskab::ops::COMPONENTS.iter().copied().chain(["notify"]).collect()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn config_reference(json: bool) -> String {
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("config-reference");
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("samskab config-reference runs");
    assert!(out.status.success(), "samskab config-reference failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

// ---------------------------------------------------------------- the binaries' flags

#[derive(Debug)]
struct Arg {
    long: Option<String>,
    env: Option<String>,
    default: Vec<String>,
    takes_value: bool,
}

struct Reference {
    /// binary -> command path (`samskab run booking`) -> args
    commands: BTreeMap<String, BTreeMap<Vec<String>, Vec<Arg>>>,
    env_only: Vec<(String, Vec<String>)>,
}

/// One container's invocation, resolved against the reference.
struct Invocation<'r> {
    bin: String,
    path: Vec<String>,
    args: &'r [Arg],
    flags: BTreeMap<String, String>,
}

impl Reference {
    fn load() -> Reference {
        let v: Value = serde_json::from_str(&config_reference(true)).expect("config-reference --json is JSON");
        let mut commands = BTreeMap::new();
        for b in v["binaries"].as_array().unwrap() {
            let mut cmds = BTreeMap::new();
            for c in b["commands"].as_array().unwrap() {
                let path: Vec<String> =
                    c["path"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect();
                let args = c["args"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| Arg {
                        long: a["long"].as_str().map(str::to_owned),
                        env: a["env"].as_str().map(str::to_owned),
                        default: a["default"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|d| d.as_str().unwrap().to_owned())
                            .collect(),
                        takes_value: a["takes_value"].as_bool().unwrap(),
                    })
                    .collect();
                cmds.insert(path, args);
            }
            commands.insert(b["name"].as_str().unwrap().to_owned(), cmds);
        }
        let env_only = v["env_only"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_owned(),
                    e["read_by"].as_array().unwrap().iter().map(|b| b.as_str().unwrap().to_owned()).collect(),
                )
            })
            .collect();
        Reference { commands, env_only }
    }

    fn all_env(&self) -> BTreeSet<String> {
        let mut all: BTreeSet<String> = self.env_only.iter().map(|(n, _)| n.clone()).collect();
        for cmds in self.commands.values() {
            for args in cmds.values() {
                all.extend(args.iter().filter_map(|a| a.env.clone()));
            }
        }
        all
    }

    fn resolve(&self, command: &[String]) -> Result<Invocation<'_>, String> {
        let Some(first) = command.first() else { return Err("no command: name the binary".into()) };
        let bin = first.rsplit('/').next().unwrap().to_owned();
        let cmds = self.commands.get(&bin).ok_or_else(|| {
            format!(
                "`{bin}` is not one of our binaries ({})",
                self.commands.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        let mut path = vec![bin.clone()];
        let mut i = 1;
        while i < command.len() && !command[i].starts_with('-') {
            let mut p = path.clone();
            p.push(command[i].clone());
            if !cmds.contains_key(&p) {
                break;
            }
            path = p;
            i += 1;
        }
        let args = cmds.get(&path).unwrap();
        let mut flags = BTreeMap::new();
        while i < command.len() {
            let t = &command[i];
            let Some(flag) = t.strip_prefix("--") else {
                return Err(format!("`{}`: unexpected argument {t:?}", path.join(" ")));
            };
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (flag, None),
            };
            let arg = args
                .iter()
                .find(|a| a.long.as_deref() == Some(name))
                .ok_or_else(|| format!("`{}` has no flag --{name} (see docs/configuration.md)", path.join(" ")))?;
            let value = if arg.takes_value {
                match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        command.get(i).cloned().ok_or_else(|| format!("--{name} needs a value"))?
                    }
                }
            } else {
                "true".to_owned()
            };
            flags.insert(name.to_owned(), value);
            i += 1;
        }
        Ok(Invocation { bin, path, args, flags })
    }
}

impl Invocation<'_> {
    fn valid_env(&self, reference: &Reference) -> BTreeSet<String> {
        let mut v: BTreeSet<String> = self.args.iter().filter_map(|a| a.env.clone()).collect();
        v.extend(reference.env_only.iter().filter(|(_, by)| by.contains(&self.bin)).map(|(n, _)| n.clone()));
        v
    }

    /// The value a flag takes: on the command line, else its variable, else its default.
    fn effective(&self, long: &str, env: &BTreeMap<String, Option<String>>) -> Option<String> {
        let arg = self.args.iter().find(|a| a.long.as_deref() == Some(long))?;
        if let Some(v) = self.flags.get(long) {
            return Some(v.clone());
        }
        if let Some(Some(v)) = arg.env.as_ref().and_then(|e| env.get(e)) {
            return Some(v.clone());
        }
        arg.default.first().cloned()
    }

    /// booking, carehome, volunteer or gateway when this runs one of them.
    fn component(&self) -> Option<String> {
        match self.path.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["samskab", "run", c] => Some((*c).to_owned()),
            [b] => b.strip_prefix("samskab-").map(str::to_owned),
            [b, "serve"] => b.strip_prefix("samskab-").map(str::to_owned),
            _ => None,
        }
    }
}

fn grpc_service_names(component: &str) -> &'static [&'static str] {
    match component {
        "booking" => booking::SERVICE_NAMES,
        "carehome" => carehome::SERVICE_NAMES,
        "volunteer" => volunteer::SERVICE_NAMES,
        "notify" => notify::SERVICE_NAMES,
        _ => &[],
    }
}

/// The gateway's operations routes (`/healthz`, `/readyz`, `/metrics`, ...), read from its source.
fn gateway_ops_paths() -> BTreeSet<String> {
    let src = std::fs::read_to_string(root().join("services/gateway/src/ops.rs")).unwrap();
    let paths: BTreeSet<String> =
        src.split(".route(\"").skip(1).filter_map(|rest| rest.split('"').next().map(str::to_owned)).collect();
    assert!(paths.contains("/healthz") && paths.contains("/readyz"), "gateway ops routes not found: {paths:?}");
    paths
}

// ---------------------------------------------------------------- YAML

fn yaml_docs(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    yaml_text_docs(&text, &path.display().to_string())
}

fn yaml_text_docs(text: &str, origin: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let mut v = serde_norway::Value::deserialize(doc).map_err(|e| format!("{origin}: {e}"))?;
        v.apply_merge().map_err(|e| format!("{origin}: merge keys: {e}"))?;
        let v = serde_json::to_value(&v).map_err(|e| format!("{origin}: {e}"))?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(p);
        }
    }
}

fn s(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(s).collect()).unwrap_or_default()
}

/// `host:port` of `scheme://[user@]host:port/...`.
fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let hostport = authority.rsplit('@').next()?;
    let (h, p) = hostport.rsplit_once(':')?;
    Some((h.to_owned(), p.parse().ok()?))
}

fn port_of_addr(addr: &str) -> Option<u16> {
    addr.rsplit_once(':')?.1.parse().ok()
}

/// A third-party image must name a version: a tag with a digit that is not `latest`, or a digest.
fn image_problem(image: &str) -> Option<String> {
    if image.contains("@sha256:") {
        return None;
    }
    let last = image.rsplit('/').next().unwrap();
    match last.split_once(':') {
        None => Some(format!("image {image}: no tag (pin a version)")),
        Some((_, "latest")) => Some(format!("image {image}: `latest` is not pinned")),
        Some((_, tag)) if !tag.chars().any(|c| c.is_ascii_digit()) => {
            Some(format!("image {image}: tag {tag:?} names no version"))
        }
        _ => None,
    }
}

fn image_name(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap();
    let last = no_digest.rsplit('/').next().unwrap();
    last.split(':').next().unwrap()
}

// ---------------------------------------------------------------- containers

#[derive(Debug, Clone)]
enum Probe {
    Http { path: String, port: u16 },
    Grpc { port: u16, service: Option<String> },
    Tcp { port: u16 },
}

#[derive(Debug, Default)]
struct Container {
    origin: String,
    image: String,
    command: Vec<String>,
    /// Name -> literal value (None: from a Secret).
    env: BTreeMap<String, Option<String>>,
    /// Variables from envFrom (ConfigMap/Secret keys), checked like `env`.
    env_from: BTreeMap<String, Option<String>>,
    ports: BTreeSet<u16>,
    probes: Vec<Probe>,
}

/// Everything checked of one of our containers; returns its component and listen port.
fn check_container(r: &Reference, c: &Container, problems: &mut Vec<String>) -> Option<(Option<String>, Option<u16>)> {
    let mut p = |m: String| problems.push(format!("{}: {m}", c.origin));
    if image_name(&c.image) != OUR_IMAGE {
        p(format!("runs {:?} from image {}, not ours ({OUR_IMAGE})", c.command.first(), c.image));
    }
    let inv = match r.resolve(&c.command) {
        Ok(i) => i,
        Err(e) => {
            p(e);
            return None;
        }
    };
    let mut valid = inv.valid_env(r);
    // libpq's password variable, which sqlx reads when a PostgreSQL URL names no password.
    if c.env.values().flatten().any(|v| v.starts_with("postgres")) {
        valid.insert("PGPASSWORD".to_owned());
    }
    let all_text = c
        .env
        .values()
        .chain(c.env_from.values())
        .flatten()
        .cloned()
        .chain(c.command.iter().cloned())
        .collect::<Vec<_>>()
        .join("\n");
    for name in c.env.keys() {
        let helper = all_text.contains(&format!("$({name})"));
        if !valid.contains(name) && !helper {
            p(format!("sets {name}, which `{}` does not read (see docs/configuration.md)", inv.path.join(" ")));
        }
        if helper && valid.contains(name) {
            p(format!("{name} is used as a $(helper) but is also a real variable"));
        }
    }
    for name in c.env_from.keys() {
        if !valid.contains(name) {
            p(format!("envFrom brings {name}, which `{}` does not read", inv.path.join(" ")));
        }
    }
    let mut env = c.env_from.clone();
    env.extend(c.env.clone());
    let component = inv.component();
    // Only the commands that serve listen (`samskab migrate` has the flag but serves nothing).
    let serves = component.is_some() || inv.path == ["samskab", "serve"];
    let listen = inv.effective("listen", &env).filter(|_| serves);
    let port = match &listen {
        Some(addr) => {
            if addr.starts_with("127.") || addr.starts_with("localhost") || addr.starts_with("[::1]") {
                p(format!("listens on {addr}, loopback only: unreachable from other containers"));
            }
            let port = port_of_addr(addr);
            if port.is_none() {
                p(format!("listen address {addr:?} has no port"));
            }
            port
        }
        None => None,
    };
    match port {
        Some(port) => {
            if !c.ports.contains(&port) {
                p(format!("listens on port {port} but declares ports {:?}", c.ports));
            }
            for other in c.ports.iter().filter(|q| **q != port) {
                p(format!("declares port {other}, but the binary listens on {port} only"));
            }
            let grpc = component.as_deref().is_some_and(|c| c != "gateway");
            if c.probes.is_empty() {
                p("has no health check / probes".into());
            }
            for probe in &c.probes {
                match probe {
                    Probe::Http { path, port: pp } => {
                        if grpc {
                            p(format!("HTTP probe {path} on a gRPC service: use a grpc (or tcp) probe"));
                        } else if !gateway_ops_paths().contains(path) {
                            p(format!("probe path {path} is not a gateway operations route {:?}", gateway_ops_paths()));
                        }
                        if *pp != port {
                            p(format!("probe {path} on port {pp}, but the binary listens on {port}"));
                        }
                    }
                    Probe::Grpc { port: pp, service } => {
                        if !grpc {
                            p("gRPC health probe on a component that does not speak gRPC".into());
                        }
                        if c.env.contains_key("SAMSKAB_TLS_CERT") {
                            p("gRPC probe on a server that requires a client certificate (mutual TLS), which \
                               kubelet cannot present: use tcpSocket (the gateway's /readyz asks the \
                               services' health over mutual TLS)"
                                .into());
                        }
                        if *pp != port {
                            p(format!("gRPC probe on port {pp}, but the binary listens on {port}"));
                        }
                        let names = grpc_service_names(component.as_deref().unwrap_or(""));
                        if let Some(s) = service.as_deref().filter(|s| !s.is_empty())
                            && !names.contains(&s)
                        {
                            p(format!("gRPC probe asks for service {s:?}, not one of {names:?}"));
                        }
                    }
                    Probe::Tcp { port: pp } => {
                        if *pp != port {
                            p(format!("TCP probe on port {pp}, but the binary listens on {port}"));
                        }
                    }
                }
            }
        }
        None => {
            if !c.ports.is_empty() || !c.probes.is_empty() {
                p(format!("`{}` serves nothing but ports/probes are declared", inv.path.join(" ")));
            }
        }
    }
    // Each component's database is the schema `samskab migrate` creates for it.
    for comp in db_components() {
        let var = format!("SAMSKAB_{}_DATABASE_URL", comp.to_uppercase());
        if let Some(Some(url)) = env.get(&var)
            && url.starts_with("postgres")
            && url.split(['?', '&']).find_map(|kv| kv.strip_prefix("schema=")) != Some(comp)
        {
            p(format!("{var}={url}: not the `{comp}` schema that `samskab migrate` creates"));
        }
    }
    if inv.path == ["samskab", "migrate"] {
        let url = inv.effective("database-url", &env).unwrap_or_default();
        if !url.starts_with("postgres") && !url.starts_with("$(") {
            p(format!("migrate runs against {url:?}, not PostgreSQL"));
        }
        if url.contains("schema=") {
            p("migrate is given a schema: it derives one per component itself".into());
        }
    }
    Some((component, port))
}

/// URLs that name no peer: the REST API's public address (notify's links in e-mails).
const NOT_PEERS: &[&str] = &["SAMSKAB_PUBLIC_URL", "--public-url"];

/// The `http://host:port` peer URLs given to a container: (variable or flag, url).
fn peer_urls(c: &Container) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = c
        .env
        .iter()
        .chain(c.env_from.iter())
        .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
        .filter(|(k, v)| k.ends_with("_URL") && v.starts_with("http") && !NOT_PEERS.contains(&k.as_str()))
        .collect();
    for w in c.command.windows(2) {
        if w[0].ends_with("-url") && w[1].starts_with("http") && !NOT_PEERS.contains(&w[0].as_str()) {
            out.push((w[0].clone(), w[1].clone()));
        }
    }
    out
}

/// SAMSKAB_BOOKING_URL / --booking-url -> booking.
fn peer_component(var: &str) -> Option<String> {
    let v = var.trim_start_matches("--").to_lowercase().replace('-', "_");
    let v = v.strip_prefix("samskab_").unwrap_or(&v);
    let c = v.strip_suffix("_url")?;
    DEPLOYED.contains(&c).then(|| c.to_owned())
}

// ---------------------------------------------------------------- tests

#[test]
fn configuration_md_is_generated_from_the_binaries() {
    let generated = config_reference(false);
    let path = root().join("docs/configuration.md");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    if on_disk != generated {
        let line = on_disk.lines().zip(generated.lines()).position(|(a, b)| a != b);
        let detail = match line {
            Some(i) => format!(
                "first difference at line {}:\n  docs:      {:?}\n  binaries:  {:?}",
                i + 1,
                on_disk.lines().nth(i).unwrap(),
                generated.lines().nth(i).unwrap()
            ),
            None => format!("lengths differ ({} vs {} lines)", on_disk.lines().count(), generated.lines().count()),
        };
        panic!(
            "docs/configuration.md is out of date with the binaries' flags; regenerate it with\n  \
             cargo run -q -p samskab -- config-reference > docs/configuration.md\n{detail}"
        );
    }
    for bin in
        ["samskab", "samskab-booking", "samskab-carehome", "samskab-volunteer", "samskab-gateway", "samskab-notify"]
    {
        assert!(generated.contains(&format!("## `{bin}`")), "the reference has no section for {bin}");
    }
}

/// Every SAMSKAB_*/OTEL_* variable named in the code the binaries run is in the reference.
#[test]
fn every_variable_the_code_reads_is_documented() {
    let reference = Reference::load().all_env();
    let mut missing = BTreeSet::new();
    let mut files = Vec::new();
    for top in ["crates", "services"] {
        for e in std::fs::read_dir(root().join(top)).unwrap() {
            let dir = e.unwrap().path();
            // Not part of the deployed binaries: test helpers (SAMSKAB_TEST_PG_URL) and the
            // load generator (a developer tool with its own --help).
            if dir.ends_with("testkit") || dir.ends_with("load") {
                continue;
            }
            rs_files(&dir.join("src"), &mut files);
        }
    }
    assert!(files.len() > 20, "found only {} source files", files.len());
    for f in files {
        let src = std::fs::read_to_string(&f).unwrap();
        for part in src.split('"').skip(1).step_by(2) {
            let is_var = (part.starts_with("SAMSKAB_") || part.starts_with("OTEL_"))
                && part.len() > 8
                && part.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if is_var && !reference.contains(part) {
                missing.insert(format!("{part} ({})", f.strip_prefix(root()).unwrap().display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "variables read by the code but missing from `samskab config-reference` (add them to \
         services/samskab/src/config_reference.rs EXTRA_ENV or to a clap `env =`): {missing:#?}"
    );
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_yaml_file_under_deploy_parses() {
    let mut files = Vec::new();
    yaml_files(&root().join("deploy"), &mut files);
    assert!(files.len() >= 10, "expected the compose file, collector config and manifests, found {files:?}");
    let errors: Vec<String> = files.iter().filter_map(|f| yaml_docs(f).err()).collect();
    assert!(errors.is_empty(), "YAML that does not parse:\n{}", errors.join("\n"));
    for f in &files {
        assert!(!yaml_docs(f).unwrap().is_empty(), "{} is empty", f.display());
    }
    assert!(root().join("deploy/Dockerfile").is_file());
}

#[test]
fn the_dockerfile_builds_every_binary_into_a_non_root_image() {
    let df = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    let r = Reference::load();
    for bin in r.commands.keys() {
        assert!(
            df.contains(&format!("target/release/{bin} ")) || df.contains(&format!("target/release/{bin}\n")),
            "deploy/Dockerfile does not copy {bin} into the image"
        );
        assert!(df.contains(&format!("-p {bin}")), "deploy/Dockerfile does not build package {bin}");
    }
    let froms: Vec<&str> = df.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "not multi-stage: {froms:?}");
    let runtime = froms.last().unwrap().split_whitespace().nth(1).unwrap();
    assert_eq!(image_problem(runtime), None, "runtime base image");
    let user = df.lines().rfind(|l| l.starts_with("USER ")).expect("a USER line");
    assert!(!user.contains("root") && !user.contains(" 0"), "the image runs as root: {user}");
    // The test clock (servicekit::clock) is for test builds only.
    assert!(
        !df.contains("test-clock") && !df.contains("--all-features") && !df.contains("--features"),
        "deploy/Dockerfile builds with extra features: the image must never have the test clock"
    );
}

// ------------------------------------------------------------ compose

fn compose_problems(compose: &Value, r: &Reference) -> Vec<String> {
    let mut problems = Vec::new();
    let services = compose["services"].as_object().expect("compose: services");
    let mut listen: BTreeMap<String, (Option<String>, u16)> = BTreeMap::new();
    let mut containers = Vec::new();
    for (name, svc) in services {
        let origin = format!("docker-compose.yml service {name}");
        let Some(image) = svc["image"].as_str() else {
            problems.push(format!("{origin}: no image (name it, so that every service uses the one image)"));
            continue;
        };
        if image_name(image) != OUR_IMAGE {
            if let Some(e) = image_problem(image) {
                problems.push(format!("{origin}: {e}"));
            }
            if let Some(cmd) = svc["command"].as_array().and_then(|c| c.first()).and_then(|c| c.as_str())
                && cmd.starts_with("samskab")
            {
                problems.push(format!("{origin}: runs {cmd} from a foreign image"));
            }
            continue;
        }
        if !svc["command"].is_array() {
            problems.push(format!("{origin}: give `command` as a list naming the binary"));
            continue;
        }
        let mut c = Container {
            origin: origin.clone(),
            image: image.to_owned(),
            command: strings(&svc["command"]),
            ..Default::default()
        };
        match &svc["environment"] {
            Value::Object(m) => {
                for (k, v) in m {
                    c.env.insert(k.clone(), s(v));
                }
            }
            Value::Array(a) => {
                for kv in a.iter().filter_map(|v| v.as_str()) {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    c.env.insert(k.to_owned(), Some(v.to_owned()));
                }
            }
            _ => {}
        }
        for p in strings(&svc["expose"]) {
            c.ports.insert(p.split('/').next().unwrap().parse().expect("expose: a port"));
        }
        for p in strings(&svc["ports"]) {
            let target = p.split('/').next().unwrap().rsplit(':').next().unwrap();
            c.ports.insert(target.parse().expect("ports: host:container"));
        }
        let hc = strings(&svc["healthcheck"]["test"]).join(" ");
        if let Some(idx) = hc.find("127.0.0.1").or_else(|| hc.find("localhost")) {
            let rest = &hc[idx..];
            let after = rest.split_once([':', '/']).map(|x| x.1).unwrap_or("");
            let digits: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
            let path: String =
                after[digits.len()..].chars().take_while(|c| !c.is_whitespace() && *c != '"' && *c != '\'').collect();
            let port = digits.parse().unwrap_or(0);
            c.probes.push(if hc.contains("http://") { Probe::Http { path, port } } else { Probe::Tcp { port } });
        } else if !hc.is_empty() {
            problems.push(format!("{origin}: health check {hc:?} does not name a local port"));
        }
        if let Some((comp, Some(port))) = check_container(r, &c, &mut problems) {
            listen.insert(name.clone(), (comp, port));
        }
        containers.push(c);
    }
    // Peer URLs name a compose service of the right component, on its listen port.
    for c in &containers {
        for (var, url) in peer_urls(c) {
            let Some((host, port)) = host_port(&url) else { continue };
            match (listen.get(&host), peer_component(&var)) {
                (Some((comp, p)), want) => {
                    if *p != port {
                        problems.push(format!("{}: {var}={url}, but {host} listens on {p}", c.origin));
                    }
                    if want.is_some() && comp != &want {
                        problems.push(format!("{}: {var} points at {host}, which runs {comp:?}", c.origin));
                    }
                }
                (None, Some(_)) => problems.push(format!("{}: {var}={url}: no such service of ours", c.origin)),
                (None, None) => {
                    if !services.contains_key(&host) {
                        problems.push(format!("{}: {var}={url}: no compose service {host}", c.origin));
                    }
                }
            }
        }
        for (var, v) in c.env.iter().filter_map(|(k, v)| Some((k, v.clone()?))) {
            if v.starts_with("postgres")
                && let Some((host, _)) = host_port(&v)
                && !services.contains_key(&host)
            {
                problems.push(format!("{}: {var} names host {host}, not a compose service", c.origin));
            }
        }
    }
    // depends_on names services; service_healthy targets have a health check.
    for (name, svc) in services {
        if let Some(deps) = svc["depends_on"].as_object() {
            for (dep, cond) in deps {
                let Some(target) = services.get(dep) else {
                    problems.push(format!("service {name} depends on unknown service {dep}"));
                    continue;
                };
                if cond["condition"] == "service_healthy" && target["healthcheck"].is_null() {
                    problems
                        .push(format!("service {name} waits for {dep} to be healthy, but {dep} has no health check"));
                }
            }
        }
    }
    for want in DEPLOYED {
        if !listen.values().any(|(c, _)| c.as_deref() == Some(want)) {
            problems.push(format!("docker-compose.yml runs no {want}"));
        }
    }
    if !containers.iter().any(|c| c.command.get(1).map(String::as_str) == Some("migrate")) {
        problems.push("docker-compose.yml has no `samskab migrate` one-shot".into());
    }
    problems
}

#[test]
fn compose_agrees_with_the_binaries() {
    let r = Reference::load();
    let deploy = root().join("deploy");
    let compose = yaml_docs(&deploy.join("docker-compose.yml")).unwrap().remove(0);
    let mut problems = compose_problems(&compose, &r);
    let services = compose["services"].as_object().unwrap();
    for want in ["postgres", "otel-collector", "jaeger"] {
        assert!(services.contains_key(want), "docker-compose.yml has no {want}");
    }
    assert!(compose["services"]["postgres"]["image"].as_str().unwrap().starts_with("postgres:15"), "PostgreSQL 15");
    // The collector: its config file is mounted, takes OTLP/gRPC where our containers send
    // it, and exports to services that exist.
    let collector = &compose["services"]["otel-collector"];
    let mount = strings(&collector["volumes"])
        .into_iter()
        .find(|v| v.contains("otel-collector.yaml"))
        .expect("collector config mounted");
    let file = deploy.join(mount.split(':').next().unwrap());
    let config = yaml_docs(&file).expect("collector config parses").remove(0);
    let grpc_port = config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
        .as_str()
        .and_then(port_of_addr)
        .expect("an OTLP gRPC receiver");
    for (name, svc) in services {
        if let Some(ep) = svc["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"].as_str() {
            assert_eq!(
                host_port(ep),
                Some(("otel-collector".to_owned(), grpc_port)),
                "service {name} sends OTLP to {ep}"
            );
        }
    }
    for (name, exp) in config["exporters"].as_object().unwrap() {
        if let Some((host, _)) =
            exp["endpoint"].as_str().and_then(|e| host_port(&format!("x://{e}"))).filter(|(h, _)| h != "0.0.0.0")
            && !services.contains_key(&host)
        {
            problems.push(format!("collector exporter {name} sends to {host}, not a compose service"));
        }
    }
    for pipeline in config["service"]["pipelines"].as_object().unwrap().values() {
        for kind in ["receivers", "processors", "exporters"] {
            for used in strings(&pipeline[kind]) {
                if config[kind][&used].is_null() && !config[kind].as_object().is_some_and(|m| m.contains_key(&used)) {
                    problems.push(format!("collector pipeline uses undefined {kind} {used}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "deploy/docker-compose.yml disagrees with the binaries:\n  {}", problems.join("\n  "));
}

// ------------------------------------------------------------ kustomize

/// The objects of a kustomization, with its patches, images and replicas applied (a
/// small subset of kustomize: strategic merge by kind and name, lists of named items
/// merged by name, other lists replaced).
struct Kustomized {
    objects: Vec<Value>,
    /// Image name -> (newName, newTag), from every kustomization on the way.
    images: BTreeMap<String, (Option<String>, Option<String>)>,
    /// Objects a patch deletes (`$patch: delete`): a Secret so removed is one the operator
    /// creates out of band instead, with the same keys.
    deleted: Vec<Value>,
}

fn kustomize(dir: &Path, problems: &mut Vec<String>) -> Kustomized {
    let k = yaml_docs(&dir.join("kustomization.yaml")).unwrap_or_else(|e| panic!("{e}")).remove(0);
    let mut out = Kustomized { objects: Vec::new(), images: BTreeMap::new(), deleted: Vec::new() };
    for res in strings(&k["resources"]) {
        let p = dir.join(&res);
        if p.is_dir() {
            if !p.join("kustomization.yaml").is_file() {
                problems.push(format!("{}: resource {res} is a directory without kustomization.yaml", dir.display()));
                continue;
            }
            let inner = kustomize(&p, problems);
            out.objects.extend(inner.objects);
            out.images.extend(inner.images);
            out.deleted.extend(inner.deleted);
        } else if p.is_file() {
            out.objects.extend(yaml_docs(&p).unwrap_or_else(|e| panic!("{e}")));
        } else {
            problems.push(format!("{}: resource {res} does not exist", dir.display()));
        }
    }
    for patch in
        k["patches"].as_array().into_iter().flatten().chain(k["patchesStrategicMerge"].as_array().into_iter().flatten())
    {
        // A file, or the patch inline.
        let (file, docs) = match patch["patch"].as_str() {
            Some(text) => ("(inline)", yaml_text_docs(text, "inline patch")),
            None => {
                let file = patch["path"].as_str().or(patch.as_str()).expect("patch path");
                (file, yaml_docs(&dir.join(file)))
            }
        };
        let Ok(docs) = docs else {
            problems.push(format!("{}: patch {file} does not exist or parse", dir.display()));
            continue;
        };
        for doc in docs {
            let (kind, name) = (doc["kind"].clone(), doc["metadata"]["name"].clone());
            match out.objects.iter().position(|o| o["kind"] == kind && o["metadata"]["name"] == name) {
                Some(i) if doc["$patch"] == "delete" => out.deleted.push(out.objects.remove(i)),
                Some(i) => merge(&mut out.objects[i], &doc),
                None => problems
                    .push(format!("{}: patch {file} targets {kind}/{name}, which is not a resource", dir.display())),
            }
        }
    }
    for img in k["images"].as_array().into_iter().flatten() {
        let name = img["name"].as_str().unwrap().to_owned();
        let prev = out.images.remove(&name).unwrap_or((None, None));
        out.images.insert(name, (img["newName"].as_str().map(str::to_owned).or(prev.0), s(&img["newTag"]).or(prev.1)));
    }
    for rep in k["replicas"].as_array().into_iter().flatten() {
        match out.objects.iter_mut().find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == rep["name"]) {
            Some(d) => d["spec"]["replicas"] = rep["count"].clone(),
            None => problems.push(format!("{}: replicas for {}, which is no Deployment", dir.display(), rep["name"])),
        }
    }
    out
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(t), Value::Array(p))
            if p.iter().all(|i| i["name"].is_string()) && t.iter().all(|i| i["name"].is_string()) =>
        {
            for item in p {
                match t.iter_mut().find(|x| x["name"] == item["name"]) {
                    Some(existing) => merge(existing, item),
                    None => t.push(item.clone()),
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    let by_labels = selector["matchLabels"].as_object().into_iter().flatten().all(|(k, v)| &labels[k] == v);
    let by_expr = selector["matchExpressions"].as_array().into_iter().flatten().all(|e| {
        let value = labels[e["key"].as_str().unwrap()].as_str();
        let values = strings(&e["values"]);
        match e["operator"].as_str().unwrap() {
            "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
            "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            op => panic!("unknown selector operator {op}"),
        }
    });
    by_labels && by_expr
}

fn probe_port(port: &Value, named: &BTreeMap<String, u16>) -> u16 {
    match port {
        Value::Number(n) => n.as_u64().unwrap() as u16,
        Value::String(name) => named.get(name).copied().unwrap_or(0),
        _ => 0,
    }
}

/// A Deployment: the object, its component, its listen port, its named container ports.
type Workload = (Value, Option<String>, Option<u16>, BTreeMap<String, u16>);

/// A named way to break the compose file.
type Mistake = (&'static str, Box<dyn Fn(&mut Value)>);

fn k8s_problems(dir: &Path, r: &Reference) -> Vec<String> {
    let mut problems = Vec::new();
    let k = kustomize(dir, &mut problems);
    let objs = &k.objects;
    let find = |kind: &str, name: &str| objs.iter().find(|o| o["kind"] == kind && o["metadata"]["name"] == name);
    let of_kind = |kind: &'static str| objs.iter().filter(move |o| o["kind"] == kind);
    // Secrets and ConfigMaps: name -> key -> value (None: secret or unknown value).
    let mut stores: BTreeMap<(String, String), BTreeMap<String, Option<String>>> = BTreeMap::new();
    for o in objs {
        let kind = o["kind"].as_str().unwrap_or_default();
        if kind == "Secret" || kind == "ConfigMap" {
            let mut keys = BTreeMap::new();
            for field in ["data", "stringData"] {
                for (key, v) in o[field].as_object().into_iter().flatten() {
                    keys.insert(key.clone(), if kind == "ConfigMap" { s(v) } else { None });
                }
            }
            stores.insert((kind.to_owned(), o["metadata"]["name"].as_str().unwrap().to_owned()), keys);
        }
    }
    // Secrets made by operators, or out of band as the manifests say: those whose
    // placeholders an overlay deletes keep their keys.
    for o in k.deleted.iter().filter(|o| o["kind"] == "Secret") {
        let keys = ["data", "stringData"]
            .iter()
            .flat_map(|f| o[*f].as_object().into_iter().flatten().map(|(key, _)| (key.clone(), None)))
            .collect();
        stores.insert(("Secret".into(), o["metadata"]["name"].as_str().unwrap().to_owned()), keys);
    }
    let mut made = |name: String, keys: &[&str]| {
        stores.entry(("Secret".into(), name)).or_insert_with(|| keys.iter().map(|k| ((*k).to_owned(), None)).collect());
    };
    for o in objs {
        let name = o["metadata"]["name"].as_str().unwrap_or_default();
        if o["kind"] == "Cluster" && o["apiVersion"].as_str().unwrap_or("").starts_with("postgresql.cnpg.io/") {
            made(format!("{name}-app"), CNPG_APP_KEYS);
            made(format!("{name}-ca"), CNPG_CA_KEYS);
            for role in o["spec"]["managed"]["roles"].as_array().into_iter().flatten() {
                if let Some(secret) = role["passwordSecret"]["name"].as_str() {
                    made(secret.to_owned(), BASIC_AUTH_KEYS);
                }
            }
        }
        if o["kind"] == "Certificate" && o["apiVersion"].as_str().unwrap_or("").starts_with("cert-manager.io/") {
            made(o["spec"]["secretName"].as_str().unwrap_or_default().to_owned(), CERT_MANAGER_KEYS);
        }
    }
    let resolve_image = |image: &str| -> String {
        let (name, tag) = match image.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            Some((n, t)) => (n.to_owned(), Some(t.to_owned())),
            None => (image.to_owned(), None),
        };
        match k.images.get(&name) {
            Some((new_name, new_tag)) => {
                let n = new_name.clone().unwrap_or(name);
                match new_tag.clone().or(tag) {
                    Some(t) => format!("{n}:{t}"),
                    None => n,
                }
            }
            None => image.to_owned(),
        }
    };
    // Workloads.
    let mut deployments: BTreeMap<String, Workload> = BTreeMap::new();
    let mut migrate_jobs = 0;
    // Deployment or Job -> its container's variables (literal values; None from a Secret).
    let mut workload_env: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
    // (calling workload, Service called, Service port).
    let mut service_calls: Vec<(String, Value, u16)> = Vec::new();
    for o in objs.iter().filter(|o| o["kind"] == "Deployment" || o["kind"] == "Job") {
        let kind = o["kind"].as_str().unwrap();
        let name = o["metadata"]["name"].as_str().unwrap();
        let pod = &o["spec"]["template"];
        if kind == "Deployment" && !labels_match(&o["spec"]["selector"], &pod["metadata"]["labels"]) {
            problems.push(format!("Deployment/{name}: selector does not match its pod labels"));
        }
        for ct in pod["spec"]["containers"].as_array().into_iter().flatten() {
            let origin = format!(
                "{}: {kind}/{name} container {}",
                dir.strip_prefix(root()).unwrap_or(dir).display(),
                ct["name"]
            );
            let image = resolve_image(ct["image"].as_str().unwrap_or_default());
            if image_name(&image) != OUR_IMAGE {
                if let Some(e) = image_problem(&image) {
                    problems.push(format!("{origin}: {e}"));
                }
                continue;
            }
            if let Some(e) = image_problem(&image) {
                problems.push(format!("{origin}: our {e} (set it in the kustomization's images)"));
            }
            let mut c =
                Container { origin: origin.clone(), image, command: strings(&ct["command"]), ..Default::default() };
            c.command.extend(strings(&ct["args"]));
            for e in ct["env"].as_array().into_iter().flatten() {
                let name = e["name"].as_str().unwrap().to_owned();
                let value = if let Some(v) = s(&e["value"]) {
                    Some(v)
                } else {
                    let (kind, r) = if !e["valueFrom"]["secretKeyRef"].is_null() {
                        ("Secret", &e["valueFrom"]["secretKeyRef"])
                    } else if !e["valueFrom"]["configMapKeyRef"].is_null() {
                        ("ConfigMap", &e["valueFrom"]["configMapKeyRef"])
                    } else {
                        problems.push(format!("{origin}: {name} has neither a value nor a Secret/ConfigMap key"));
                        continue;
                    };
                    let (store, key) = (r["name"].as_str().unwrap_or_default(), r["key"].as_str().unwrap_or_default());
                    match stores.get(&(kind.to_owned(), store.to_owned())) {
                        None => {
                            problems.push(format!("{origin}: {name} refers to {kind} {store}, which is not defined"));
                            None
                        }
                        Some(keys) => match keys.get(key) {
                            None => {
                                problems.push(format!(
                                    "{origin}: {name} refers to key {key} of {kind} {store}, which has no such key"
                                ));
                                None
                            }
                            Some(v) => v.clone(),
                        },
                    }
                };
                c.env.insert(name, value);
            }
            for ef in ct["envFrom"].as_array().into_iter().flatten() {
                let (kind, r) = if ef["secretRef"].is_null() {
                    ("ConfigMap", &ef["configMapRef"])
                } else {
                    ("Secret", &ef["secretRef"])
                };
                let store = r["name"].as_str().unwrap_or_default();
                match stores.get(&(kind.to_owned(), store.to_owned())) {
                    Some(keys) => c.env_from.extend(keys.clone()),
                    None => problems.push(format!("{origin}: envFrom {kind} {store}, which is not defined")),
                }
            }
            let mut named = BTreeMap::new();
            for p in ct["ports"].as_array().into_iter().flatten() {
                let port = p["containerPort"].as_u64().unwrap() as u16;
                c.ports.insert(port);
                if let Some(n) = p["name"].as_str() {
                    named.insert(n.to_owned(), port);
                }
            }
            for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
                let pr = &ct[probe];
                if pr.is_null() {
                    if kind == "Deployment" && probe != "startupProbe" {
                        problems.push(format!("{origin}: no {probe}"));
                    }
                    continue;
                }
                if !pr["httpGet"].is_null() {
                    c.probes.push(Probe::Http {
                        path: pr["httpGet"]["path"].as_str().unwrap_or("/").to_owned(),
                        port: probe_port(&pr["httpGet"]["port"], &named),
                    });
                } else if !pr["grpc"].is_null() {
                    c.probes.push(Probe::Grpc {
                        port: probe_port(&pr["grpc"]["port"], &named),
                        service: pr["grpc"]["service"].as_str().map(str::to_owned),
                    });
                } else if !pr["tcpSocket"].is_null() {
                    c.probes.push(Probe::Tcp { port: probe_port(&pr["tcpSocket"]["port"], &named) });
                } else {
                    problems.push(format!("{origin}: {probe} is neither httpGet, grpc nor tcpSocket"));
                }
            }
            let res = &ct["resources"];
            for (part, what) in [("requests", "cpu"), ("requests", "memory"), ("limits", "memory")] {
                if res[part][what].is_null() {
                    problems.push(format!("{origin}: no resources.{part}.{what}"));
                }
            }
            // Secret volumes: defined, and the keys they project exist.
            for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
                let Some(secret) = v["secret"]["secretName"].as_str() else { continue };
                match stores.get(&("Secret".to_owned(), secret.to_owned())) {
                    None => problems
                        .push(format!("{origin}: volume {} is Secret {secret}, which is not defined", v["name"])),
                    Some(keys) => {
                        for item in v["secret"]["items"].as_array().into_iter().flatten() {
                            let key = item["key"].as_str().unwrap_or_default();
                            if !keys.contains_key(key) {
                                problems.push(format!(
                                    "{origin}: volume {} projects key {key} of Secret {secret}, which has no such key",
                                    v["name"]
                                ));
                            }
                        }
                    }
                }
            }
            let mut env = c.env_from.clone();
            env.extend(c.env.clone());
            workload_env.insert(name.to_owned(), env);
            if let Some((comp, port)) = check_container(r, &c, &mut problems) {
                if kind == "Deployment" {
                    deployments.insert(name.to_owned(), (o.clone(), comp, port, named));
                } else if c.command.get(1).map(String::as_str) == Some("migrate") {
                    migrate_jobs += 1;
                }
            }
            // Peer URLs: a Service of ours on the port the peer listens on.
            for (var, url) in peer_urls(&c) {
                let Some((host, port)) = host_port(&url) else { continue };
                let svc_name = host.split('.').next().unwrap();
                let Some(svc) = find("Service", svc_name) else {
                    problems.push(format!("{origin}: {var}={url}: no Service {svc_name}"));
                    continue;
                };
                service_calls.push((name.to_owned(), svc.clone(), port));
                let Some(sp) = svc["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|p| p["port"].as_u64() == Some(port as u64))
                else {
                    problems.push(format!("{origin}: {var}={url}: Service {svc_name} has no port {port}"));
                    continue;
                };
                let _ = sp;
                if let Some(want) = peer_component(&var) {
                    let runs = objs
                        .iter()
                        .filter(|o| {
                            o["kind"] == "Deployment"
                                && labels_match(
                                    &json!({"matchLabels": svc["spec"]["selector"]}),
                                    &o["spec"]["template"]["metadata"]["labels"],
                                )
                        })
                        .filter_map(|o| {
                            r.resolve(&strings(&o["spec"]["template"]["spec"]["containers"][0]["command"]))
                                .ok()
                                .and_then(|i| i.component())
                        })
                        .collect::<Vec<_>>();
                    if runs != [want.clone()] {
                        problems.push(format!(
                            "{origin}: {var} points at Service {svc_name}, which selects {runs:?}, not {want}"
                        ));
                    }
                }
            }
        }
    }
    if migrate_jobs != 1 {
        problems.push(format!("expected one Job running `samskab migrate`, found {migrate_jobs}"));
    }
    let component_deployment =
        |comp: &str| deployments.iter().find(|(_, d)| d.1.as_deref() == Some(comp)).map(|(n, _)| n.clone());
    for comp in DEPLOYED {
        if component_deployment(comp).is_none() {
            problems.push(format!("no Deployment runs the {comp}"));
        }
    }
    // Services select a Deployment and target a named container port of it.
    for svc in of_kind("Service") {
        let name = svc["metadata"]["name"].as_str().unwrap();
        let selected: Vec<_> = deployments
            .values()
            .filter(|d| {
                labels_match(
                    &json!({"matchLabels": svc["spec"]["selector"]}),
                    &d.0["spec"]["template"]["metadata"]["labels"],
                )
            })
            .collect();
        if selected.len() != 1 {
            problems.push(format!("Service/{name} selects {} Deployments", selected.len()));
            continue;
        }
        for p in svc["spec"]["ports"].as_array().into_iter().flatten() {
            let target =
                probe_port(if p["targetPort"].is_null() { &p["port"] } else { &p["targetPort"] }, &selected[0].3);
            if Some(target) != selected[0].2 {
                problems.push(format!(
                    "Service/{name} port {} targets {target}, but the container listens on {:?}",
                    p["port"], selected[0].2
                ));
            }
        }
    }
    // HPAs target existing Deployments; the gateway and booking have one.
    let mut scaled = BTreeSet::new();
    for h in of_kind("HorizontalPodAutoscaler") {
        let t = &h["spec"]["scaleTargetRef"];
        let target = t["name"].as_str().unwrap_or_default();
        if t["kind"] != "Deployment" || !deployments.contains_key(target) {
            problems
                .push(format!("HPA {} targets {}/{target}, which is no Deployment", h["metadata"]["name"], t["kind"]));
        }
        if h["spec"]["minReplicas"].as_u64().unwrap_or(1) > h["spec"]["maxReplicas"].as_u64().unwrap_or(0) {
            problems.push(format!("HPA {}: minReplicas > maxReplicas", h["metadata"]["name"]));
        }
        scaled.insert(target.to_owned());
    }
    for comp in ["gateway", "booking"] {
        if let Some(d) = component_deployment(comp)
            && !scaled.contains(&d)
        {
            problems.push(format!("no HorizontalPodAutoscaler for {d}"));
        }
    }
    // PDBs: each component has one, each selects something.
    for pdb in of_kind("PodDisruptionBudget") {
        if !deployments
            .values()
            .any(|d| labels_match(&pdb["spec"]["selector"], &d.0["spec"]["template"]["metadata"]["labels"]))
        {
            problems.push(format!("PodDisruptionBudget {} selects no Deployment", pdb["metadata"]["name"]));
        }
    }
    // Who calls whom: (calling workload, Deployment called, the port its pods listen on).
    let mut calls: BTreeSet<(String, String, u16)> = BTreeSet::new();
    for (caller, svc, port) in &service_calls {
        for (callee, (d, _, _, named)) in &deployments {
            if !labels_match(
                &json!({"matchLabels": svc["spec"]["selector"]}),
                &d["spec"]["template"]["metadata"]["labels"],
            ) {
                continue;
            }
            if let Some(sp) =
                svc["spec"]["ports"].as_array().into_iter().flatten().find(|p| p["port"].as_u64() == Some(*port as u64))
            {
                let target = if sp["targetPort"].is_null() { &sp["port"] } else { &sp["targetPort"] };
                calls.insert((caller.clone(), callee.clone(), probe_port(target, named)));
            }
        }
    }
    // NetworkPolicies: the gateway open on its port; services only from our components.
    let policies: Vec<&Value> = of_kind("NetworkPolicy").collect();
    let ours: Vec<(&String, &Value)> =
        deployments.iter().map(|(n, d)| (n, &d.0["spec"]["template"]["metadata"]["labels"])).collect();
    for (name, (d, comp, port, _)) in &deployments {
        let labels = &d["spec"]["template"]["metadata"]["labels"];
        if !of_kind("PodDisruptionBudget").any(|p| labels_match(&p["spec"]["selector"], labels)) {
            problems.push(format!("no PodDisruptionBudget for {name}"));
        }
        let selecting: Vec<&&Value> =
            policies.iter().filter(|p| labels_match(&p["spec"]["podSelector"], labels)).collect();
        if !selecting.iter().any(|p| strings(&p["spec"]["policyTypes"]).contains(&"Ingress".to_owned())) {
            problems.push(format!("no NetworkPolicy restricts ingress to {name}"));
        }
        let rules: Vec<&Value> =
            selecting.iter().flat_map(|p| p["spec"]["ingress"].as_array().into_iter().flatten()).collect();
        let port = port.unwrap_or(0);
        for rule in &rules {
            let ports: Vec<u64> =
                rule["ports"].as_array().into_iter().flatten().filter_map(|p| p["port"].as_u64()).collect();
            if ports != [port as u64] {
                problems.push(format!(
                    "NetworkPolicy rule for {name} opens ports {ports:?}, the container listens on {port}"
                ));
            }
        }
        if comp.as_deref() == Some("gateway") {
            if rules.is_empty() {
                problems.push(format!("no NetworkPolicy lets anything reach the gateway {name}"));
            }
            continue;
        }
        let mut reachable_from = BTreeSet::new();
        for rule in &rules {
            let from = rule["from"].as_array().cloned().unwrap_or_default();
            if from.is_empty() {
                problems.push(format!(
                    "NetworkPolicy lets anyone reach {name}: services only from the gateway and each other"
                ));
            }
            for peer in from {
                if !peer["ipBlock"].is_null() || !peer["namespaceSelector"].is_null() || peer["podSelector"].is_null() {
                    problems.push(format!("NetworkPolicy lets {peer} reach {name}: only pods of ours may"));
                    continue;
                }
                for (other, other_labels) in &ours {
                    if labels_match(&peer["podSelector"], other_labels) {
                        reachable_from.insert((*other).clone());
                    }
                }
                if !objs
                    .iter()
                    .filter(|o| o["kind"] == "Job")
                    .all(|j| !labels_match(&peer["podSelector"], &j["spec"]["template"]["metadata"]["labels"]))
                {
                    problems.push(format!("NetworkPolicy lets a Job reach {name}"));
                }
            }
        }
        for other in &reachable_from {
            if !calls.iter().any(|(from, to, _)| from == other && to == name) {
                problems.push(format!("NetworkPolicy lets {other} reach {name}, which it never calls"));
            }
        }
        // Every caller is let in (notify follows booking's, care-home's and volunteer's feeds).
        for (caller, ..) in calls.iter().filter(|(_, to, _)| to == name) {
            if !reachable_from.contains(caller) {
                problems.push(format!("NetworkPolicy keeps {caller} from {name}, which it calls"));
            }
        }
        match component_deployment("gateway") {
            Some(g) if !reachable_from.contains(&g) => problems.push(format!("the gateway may not reach {name}")),
            _ => {}
        }
        if (comp.as_deref() == Some("carehome") || comp.as_deref() == Some("volunteer"))
            && let Some(b) = component_deployment("booking")
            && !reachable_from.contains(&b)
        {
            problems.push(format!("booking may not reach {name} (it follows its feed)"));
        }
    }
    trust_problems(objs, &deployments, &workload_env, &calls, &mut problems);
    problems
}

// ------------------------------------------------------------ least privilege (issue 15)

/// A Secret volume mounted into a container.
struct SecretMount {
    secret: String,
    path: String,
    sub_path: Option<String>,
    /// The keys it projects (`items`: key, file name), or None: every key under its name.
    items: Option<Vec<(String, String)>>,
}

fn secret_mounts(pod: &Value, ct: &Value) -> Vec<SecretMount> {
    let volumes = pod["volumes"].as_array().cloned().unwrap_or_default();
    ct["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let v = volumes.iter().find(|v| v["name"] == m["name"])?;
            Some(SecretMount {
                secret: v["secret"]["secretName"].as_str()?.to_owned(),
                path: m["mountPath"].as_str()?.trim_end_matches('/').to_owned(),
                sub_path: m["subPath"].as_str().map(str::to_owned),
                items: v["secret"]["items"].as_array().map(|a| {
                    a.iter().map(|i| (s(&i["key"]).unwrap_or_default(), s(&i["path"]).unwrap_or_default())).collect()
                }),
            })
        })
        .collect()
}

/// The Secret and key that a file of the container is.
fn secret_file(mounts: &[SecretMount], file: &str) -> Result<(String, String), String> {
    for m in mounts {
        if let Some(sub) = &m.sub_path {
            if file == m.path {
                return Ok((m.secret.clone(), sub.clone()));
            }
            continue;
        }
        let Some(rest) = file.strip_prefix(&format!("{}/", m.path)) else { continue };
        return match &m.items {
            None => Ok((m.secret.clone(), rest.to_owned())),
            Some(items) => items
                .iter()
                .find(|(_, p)| p == rest)
                .map(|(k, _)| (m.secret.clone(), k.clone()))
                .ok_or_else(|| format!("{file}: the mount of Secret {} projects no such file", m.secret)),
        };
    }
    Err(format!("{file} is not in a mounted Secret"))
}

/// Every Secret a pod reads: (how, Secret).
fn pod_secrets(pod: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let containers = pod["containers"].as_array().into_iter().chain(pod["initContainers"].as_array()).flatten();
    for ct in containers {
        for e in ct["env"].as_array().into_iter().flatten() {
            if let Some(secret) = e["valueFrom"]["secretKeyRef"]["name"].as_str() {
                out.push((format!("{} from", e["name"].as_str().unwrap_or("?")), secret.to_owned()));
            }
        }
        for e in ct["envFrom"].as_array().into_iter().flatten() {
            if let Some(secret) = e["secretRef"]["name"].as_str() {
                out.push(("envFrom".to_owned(), secret.to_owned()));
            }
        }
    }
    for v in pod["volumes"].as_array().into_iter().flatten() {
        let how = format!("volume {}", v["name"].as_str().unwrap_or("?"));
        if let Some(secret) = v["secret"]["secretName"].as_str() {
            out.push((how.clone(), secret.to_owned()));
        }
        for src in v["projected"]["sources"].as_array().into_iter().flatten() {
            if let Some(secret) = src["secret"]["name"].as_str() {
                out.push((how.clone(), secret.to_owned()));
            }
        }
    }
    out
}

/// The parts of a `postgres://` URL that matter here.
struct PgUrl {
    user: Option<String>,
    password: bool,
    host: String,
    database: String,
    params: BTreeMap<String, String>,
}

fn url_params(query: &str) -> BTreeMap<String, String> {
    query.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

fn pg_url(url: &str) -> Option<PgUrl> {
    let rest = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://"))?;
    let (before, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, database) = before.split_once('/').unwrap_or((before, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    Some(PgUrl {
        user: userinfo.map(|u| u.split(':').next().unwrap().to_owned()),
        password: userinfo.is_some_and(|u| u.contains(':')),
        host: hostport.rsplit_once(':').map_or(hostport, |(h, _)| h).to_owned(),
        database: database.to_owned(),
        params: url_params(query),
    })
}

/// The CloudNativePG Cluster whose primary Service (`<cluster>-rw`) a host names.
fn cluster_of_host(host: &str, clusters: &BTreeMap<String, &Value>) -> Option<String> {
    host.split('.').next()?.strip_suffix("-rw").filter(|c| clusters.contains_key(*c)).map(str::to_owned)
}

/// TLS to PostgreSQL that verifies the server (its certificate and its name) against the
/// CA of `cluster`, mounted from CloudNativePG's Secret `<cluster>-ca`.
fn pg_tls_problems(params: &BTreeMap<String, String>, cluster: &str, mounts: &[SecretMount]) -> Vec<String> {
    let mut out = Vec::new();
    let mode = params.get("sslmode").map_or("(none)", String::as_str);
    if mode != "verify-full" {
        out.push(format!("sslmode={mode}, not verify-full (the server's certificate and name verified)"));
    }
    match params.get("sslrootcert") {
        None => out.push(format!("no sslrootcert: the CA of Cluster {cluster} (Secret {cluster}-ca)")),
        Some(path) => match secret_file(mounts, path) {
            Err(e) => out.push(format!("sslrootcert {e}")),
            Ok((secret, key)) if secret != format!("{cluster}-ca") || key != "ca.crt" => out.push(format!(
                "sslrootcert {path} is {key} of Secret {secret}, not ca.crt of {cluster}-ca (the CA of \
                 Cluster {cluster})"
            )),
            Ok(_) => {}
        },
    }
    out
}

/// A component's PostgreSQL URL: its own role without a password in the URL, the primary
/// of a Cluster that manages that role with the password PGPASSWORD is read from, the
/// Cluster's database, verified TLS. Returns the Cluster.
fn component_pg_url(
    url: &str,
    role: &str,
    schema: Option<&str>,
    password_secret: Option<&str>,
    mounts: &[SecretMount],
    clusters: &BTreeMap<String, &Value>,
    p: &mut dyn FnMut(String),
) -> Option<String> {
    let Some(u) = pg_url(url) else {
        p("not a postgres:// URL".into());
        return None;
    };
    match &u.user {
        None => p(format!("names no user: connect as the component's own role {role}")),
        Some(user) if user != role => p(format!("connects as {user}, not the component's own role {role}")),
        _ => {}
    }
    if u.password {
        p("carries a password: give it as PGPASSWORD from the role's Secret".into());
    }
    if let Some(schema) = schema
        && u.params.get("schema").map(String::as_str) != Some(schema)
    {
        p(format!("schema {:?}, not {schema}", u.params.get("schema")));
    }
    let Some(cluster) = cluster_of_host(&u.host, clusters) else {
        p(format!("host {} is not the primary Service (<cluster>-rw) of a CloudNativePG Cluster", u.host));
        return None;
    };
    let spec = &clusters[&cluster]["spec"];
    let database = spec["bootstrap"]["initdb"]["database"].as_str().unwrap_or("app");
    if u.database != database {
        p(format!("database {:?}, but Cluster {cluster} holds {database:?}", u.database));
    }
    for e in pg_tls_problems(&u.params, &cluster, mounts) {
        p(e);
    }
    match spec["managed"]["roles"].as_array().into_iter().flatten().find(|r| r["name"] == role) {
        None => p(format!("Cluster {cluster} manages no role {role}")),
        Some(r) => {
            if r["login"] != true || r["ensure"] == "absent" {
                p(format!("role {role} of Cluster {cluster} cannot log in"));
            }
            let from = r["passwordSecret"]["name"].as_str();
            if from != password_secret {
                p(format!(
                    "PGPASSWORD comes from Secret {password_secret:?}, but Cluster {cluster} sets role {role}'s \
                     password from {from:?}"
                ));
            }
        }
    }
    Some(cluster)
}

/// A NetworkPolicy peer wider than a named namespace or a labelled set of pods.
fn broad_peer(peer: &Value) -> Option<String> {
    if let Some(cidr) = peer["ipBlock"]["cidr"].as_str() {
        return Some(format!("ipBlock {cidr}"));
    }
    let empty = |sel: &Value| {
        sel["matchLabels"].as_object().is_none_or(|m| m.is_empty())
            && sel["matchExpressions"].as_array().is_none_or(|e| e.is_empty())
    };
    match (&peer["namespaceSelector"], &peer["podSelector"]) {
        (Value::Null, Value::Null) => Some("anything (an empty peer)".into()),
        (Value::Null, pods) if empty(pods) => Some("every pod of the namespace".into()),
        (Value::Null, _) => None,
        (ns, _) if !ns["matchLabels"]["kubernetes.io/metadata.name"].is_string() => {
            Some(format!("namespaces {ns} (name one, by kubernetes.io/metadata.name)"))
        }
        _ => None,
    }
}

/// Whether a peer selects pods labelled `labels` in namespace `ns` (None: the policy's own).
fn peer_selects(peer: &Value, ns: Option<&str>, labels: &Value) -> bool {
    if !peer["ipBlock"].is_null() {
        return false;
    }
    let pods = peer["podSelector"].is_null() || labels_match(&peer["podSelector"], labels);
    match (&peer["namespaceSelector"], ns) {
        (Value::Null, None) => !peer["podSelector"].is_null() && pods,
        (Value::Null, Some(_)) | (_, None) => false,
        (sel, Some(ns)) => pods && labels_match(sel, &json!({"kubernetes.io/metadata.name": ns})),
    }
}

/// Whether the rules (`ingress` with peers under `from`, `egress` under `to`) let traffic
/// between the pod and pods labelled `labels` in `ns` through on `port`.
fn rules_allow(rules: &[&Value], peers: &str, ns: Option<&str>, labels: &Value, port: u16, protocol: &str) -> bool {
    rules.iter().any(|r| {
        let ports = r["ports"].as_array().is_none_or(|a| {
            a.is_empty()
                || a.iter().any(|p| {
                    p["port"].as_u64() == Some(port as u64) && p["protocol"].as_str().unwrap_or("TCP") == protocol
                })
        });
        ports && r[peers].as_array().is_none_or(|a| a.is_empty() || a.iter().any(|p| peer_selects(p, ns, labels)))
    })
}

/// Each component with its own certificate (mutual TLS from cert-manager), its own
/// PostgreSQL role over verified TLS, its own master key, its erasure ledger in a cluster
/// apart from its database, and network policies that let through only what it needs.
fn trust_problems(
    objs: &[Value],
    deployments: &BTreeMap<String, Workload>,
    workload_env: &BTreeMap<String, BTreeMap<String, Option<String>>>,
    calls: &BTreeSet<(String, String, u16)>,
    problems: &mut Vec<String>,
) {
    let of_kind = |kind: &'static str| objs.iter().filter(move |o| o["kind"] == kind);
    let name_of = |o: &Value| o["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let pod_labels = |name: &str| {
        objs.iter()
            .find(|o| (o["kind"] == "Deployment" || o["kind"] == "Job") && o["metadata"]["name"] == name)
            .map_or(Value::Null, |o| o["spec"]["template"]["metadata"]["labels"].clone())
    };
    let clusters: BTreeMap<String, &Value> = of_kind("Cluster").map(|c| (name_of(c), c)).collect();
    let certificates: Vec<&Value> = of_kind("Certificate").collect();
    // The internal CA: an Issuer that signs with the Secret of a CA Certificate.
    let ca_issuers: BTreeSet<String> = of_kind("Issuer")
        .chain(of_kind("ClusterIssuer"))
        .filter(|i| {
            let secret = &i["spec"]["ca"]["secretName"];
            secret.is_string()
                && certificates.iter().any(|c| c["spec"]["isCA"] == true && &c["spec"]["secretName"] == secret)
        })
        .map(name_of)
        .collect();
    // One writer per certificate Secret (an Ingress's certificate is written by cert-manager too).
    let mut writers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in &certificates {
        let secret = c["spec"]["secretName"].as_str().unwrap_or_default().to_owned();
        writers.entry(secret).or_default().push(format!("Certificate {}", name_of(c)));
    }
    for i in of_kind("Ingress") {
        for tls in i["spec"]["tls"].as_array().into_iter().flatten() {
            if let Some(secret) = tls["secretName"].as_str() {
                writers.entry(secret.to_owned()).or_default().push(format!("Ingress {}", name_of(i)));
            }
        }
    }
    for (secret, by) in &writers {
        if by.len() > 1 {
            problems.push(format!("Secret {secret} is written by {}: one certificate per Secret", by.join(" and ")));
        }
    }
    // Clusters: three instances, a pinned image, roles without powers of their own (what a
    // role may touch is granted by `samskab migrate --grant-roles`).
    let shipped: BTreeSet<String> = of_kind("Secret").map(name_of).collect();
    if clusters.is_empty() {
        problems.push("no CloudNativePG Cluster".into());
    }
    for (name, c) in &clusters {
        let instances = &c["spec"]["instances"];
        if instances != 3 {
            problems.push(format!(
                "Cluster {name} runs {instances} instances: expected 3 instances (a primary, two replicas)"
            ));
        }
        if let Some(e) = c["spec"]["imageName"].as_str().and_then(image_problem) {
            problems.push(format!("Cluster {name}: {e}"));
        }
        for role in c["spec"]["managed"]["roles"].as_array().into_iter().flatten() {
            let r = role["name"].as_str().unwrap_or_default();
            for power in ["superuser", "createdb", "createrole", "replication", "bypassrls"] {
                if role[power] == true {
                    problems.push(format!("Cluster {name}: role {r} has {power}: a component's role needs none"));
                }
            }
            if !strings(&role["inRoles"]).is_empty() {
                problems.push(format!(
                    "Cluster {name}: role {r} is a member of {:?}: it gets their rights",
                    strings(&role["inRoles"])
                ));
            }
            if let Some(secret) = role["passwordSecret"]["name"].as_str()
                && shipped.contains(secret)
            {
                problems.push(format!(
                    "Cluster {name}: the manifests ship the password of role {r} (Secret {secret}): create it \
                     out of band"
                ));
            }
        }
    }
    // The migration Job: the owners' credentials over verified TLS, granting the roles.
    let mut ledger_prefix = "erasure_ledger".to_owned();
    let mut job: Option<(String, Vec<Option<String>>)> = None;
    for j in of_kind("Job") {
        let pod = &j["spec"]["template"]["spec"];
        let ct = &pod["containers"][0];
        let mut cmd = strings(&ct["command"]);
        cmd.extend(strings(&ct["args"]));
        if cmd.get(1).map(String::as_str) != Some("migrate") {
            continue;
        }
        let name = name_of(j);
        let mounts = secret_mounts(pod, ct);
        if !cmd.iter().any(|a| a == "--grant-roles") {
            problems.push(format!(
                "Job/{name}: `samskab migrate` without --grant-roles: the components' roles could not use their schemas"
            ));
        }
        let mut found = Vec::new();
        for flag in ["--database-url", "--erasure-ledger-url"] {
            let Some(url) = cmd.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone()) else {
                problems.push(format!("Job/{name}: no {flag}"));
                found.push(None);
                continue;
            };
            // `$(VAR)?...` with VAR the `uri` of a Cluster's owner Secret, or a literal URL.
            let cluster = match url.strip_prefix("$(").and_then(|r| r.split_once(')')) {
                Some((var, _)) => ct["env"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|e| e["name"] == var)
                    .and_then(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str())
                    .and_then(|secret| secret.strip_suffix("-app"))
                    .filter(|c| clusters.contains_key(*c))
                    .map(str::to_owned),
                None => pg_url(&url).and_then(|u| cluster_of_host(&u.host, &clusters)),
            };
            let Some(cluster) = cluster else {
                problems.push(format!("Job/{name}: {flag} {url} names no CloudNativePG Cluster"));
                found.push(None);
                continue;
            };
            let params = url_params(url.split_once('?').map_or("", |(_, q)| q));
            for e in pg_tls_problems(&params, &cluster, &mounts) {
                problems.push(format!("Job/{name}: {flag}: {e}"));
            }
            if flag == "--erasure-ledger-url"
                && let Some(prefix) = params.get("schema")
            {
                ledger_prefix = prefix.clone();
            }
            found.push(Some(cluster));
        }
        if let [Some(db), Some(ledger)] = found.as_slice()
            && db == ledger
        {
            problems.push(format!("Job/{name}: the erasure ledger is migrated in Cluster {db}, with the database"));
        }
        job = Some((name, found));
    }
    // The components.
    let mut master_keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Workload -> the Clusters it connects to.
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let (mut db_clusters, mut ledger_clusters) = (BTreeSet::new(), BTreeSet::new());
    for (name, (d, comp, _, _)) in deployments {
        let Some(c) = comp.as_deref() else { continue };
        let mut p = |m: String| problems.push(format!("Deployment/{name} ({c}): {m}"));
        let pod = &d["spec"]["template"]["spec"];
        let ct = &pod["containers"][0];
        let env = workload_env.get(name).cloned().unwrap_or_default();
        let lit = |var: &str| env.get(var).cloned().flatten();
        let from_secret = |var: &str| {
            ct["env"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["name"] == var)
                .and_then(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str())
                .map(str::to_owned)
        };
        let mounts = secret_mounts(pod, ct);
        // Mutual TLS, from a certificate of the internal CA for `<c>.samskab.internal`.
        let mut cmd = strings(&ct["command"]);
        cmd.extend(strings(&ct["args"]));
        if env.contains_key("SAMSKAB_INSECURE_PLAINTEXT") || cmd.iter().any(|a| a.starts_with("--insecure-plaintext")) {
            p("sets SAMSKAB_INSECURE_PLAINTEXT: the components speak mutual TLS only".into());
        }
        for m in mounts.iter().filter(|m| m.sub_path.is_some()) {
            p(format!(
                "mounts Secret {} at {} with subPath: kubelet never updates such a file, so a renewed \
                 certificate would not reach the pod",
                m.secret, m.path
            ));
        }
        let mut tls_secrets = BTreeSet::new();
        for (var, key) in
            [("SAMSKAB_TLS_CERT", "tls.crt"), ("SAMSKAB_TLS_KEY", "tls.key"), ("SAMSKAB_TLS_CA", "ca.crt")]
        {
            match lit(var) {
                None => p(format!("no {var}: mutual TLS needs the component's certificate, key and CA")),
                Some(path) => match secret_file(&mounts, &path) {
                    Err(e) => p(format!("{var}={e}")),
                    Ok((secret, k)) => {
                        if k != key {
                            p(format!("{var}={path} is {k} of Secret {secret}, not {key}"));
                        }
                        tls_secrets.insert(secret);
                    }
                },
            }
        }
        if tls_secrets.len() > 1 {
            p(format!("SAMSKAB_TLS_* come from several Secrets {tls_secrets:?}: one certificate"));
        }
        let want_dns = vec![servicekit::tls::component_name(c)];
        for secret in &tls_secrets {
            let Some(cert) = certificates.iter().find(|x| x["spec"]["secretName"] == secret.as_str()) else {
                p(format!("its TLS Secret {secret} is issued by no cert-manager Certificate"));
                continue;
            };
            let cn = name_of(cert);
            let issuer = cert["spec"]["issuerRef"]["name"].as_str().unwrap_or_default();
            if !ca_issuers.contains(issuer) {
                p(format!("Certificate {cn} is issued by {issuer:?}, not by the internal CA (an Issuer with spec.ca)"));
            }
            let dns = strings(&cert["spec"]["dnsNames"]);
            if dns != want_dns {
                p(format!("Certificate {cn} names {dns:?}: the binaries verify the {c} by exactly {want_dns:?}"));
            }
            let usages = strings(&cert["spec"]["usages"]);
            for u in ["server auth", "client auth"] {
                if !usages.iter().any(|x| x == u) {
                    p(format!("Certificate {cn} lacks the usage `{u}`: a component serves and calls with it"));
                }
            }
        }
        // Its own Secrets only, and the clusters' CA certificates (never their keys).
        let own = [format!("samskab-{c}-keys"), format!("samskab-pg-{c}"), format!("samskab-{c}-tls")];
        for (how, secret) in pod_secrets(pod) {
            if secret.strip_suffix("-app").is_some_and(|cl| clusters.contains_key(cl)) {
                p(format!(
                    "{how} Secret {secret}, the database owner's credentials (the migration Job's): a \
                     component connects as its own role"
                ));
            } else if !own.contains(&secret) && !secret.strip_suffix("-ca").is_some_and(|cl| clusters.contains_key(cl))
            {
                p(format!("{how} Secret {secret}, which is neither its own ({}) nor a cluster's CA", own.join(", ")));
            }
        }
        for v in pod["volumes"].as_array().into_iter().flatten() {
            let Some(secret) = v["secret"]["secretName"].as_str() else { continue };
            let keys: Vec<String> =
                v["secret"]["items"].as_array().into_iter().flatten().filter_map(|i| s(&i["key"])).collect();
            if secret.strip_suffix("-ca").is_some_and(|cl| clusters.contains_key(cl))
                && (keys.is_empty() || keys.iter().any(|k| k != "ca.crt"))
            {
                p(format!(
                    "volume {} mounts Secret {secret}, which holds the CA's private key: project only ca.crt (items)",
                    v["name"]
                ));
            }
        }
        match from_secret("SAMSKAB_MASTER_KEY") {
            Some(secret) => master_keys.entry(secret).or_default().push(c.to_owned()),
            None => p("no SAMSKAB_MASTER_KEY from a Secret".into()),
        }
        // A secret given as a file (notify's SAMSKAB_SMTP_PASSWORD_FILE, a *_KEY_FILE) is a
        // file of one of its own Secrets, mounted.
        for (var, path) in env.iter().filter_map(|(k, v)| Some((k, v.as_deref()?))) {
            if !(var.ends_with("_FILE") && (var.contains("PASSWORD") || var.contains("KEY"))) {
                continue;
            }
            match secret_file(&mounts, path) {
                Err(e) => p(format!("{var}={e}")),
                Ok((secret, _)) if !own.contains(&secret) => {
                    p(format!("{var}={path} is in Secret {secret}, not one of its own ({})", own.join(", ")))
                }
                Ok(_) => {}
            }
        }
        // Its own role in both clusters; its database and its erasure ledger in different ones.
        let password_secret = from_secret("PGPASSWORD");
        if password_secret.as_deref() != Some(own[1].as_str()) {
            p(format!("PGPASSWORD comes from Secret {password_secret:?}, not its role's Secret {}", own[1]));
        }
        let role = format!("samskab_{c}");
        let mut at = Vec::new();
        let db_var = format!("SAMSKAB_{}_DATABASE_URL", c.to_uppercase());
        let ledger_schema = format!("{ledger_prefix}_{c}");
        for (var, schema) in [(db_var.as_str(), None), ("SAMSKAB_ERASURE_LEDGER_URL", Some(ledger_schema.as_str()))] {
            let Some(url) = lit(var) else {
                p(format!("no {var} given as a value"));
                at.push(None);
                continue;
            };
            let mut q = |m: String| p(format!("{var}={url}: {m}"));
            at.push(component_pg_url(&url, &role, schema, password_secret.as_deref(), &mounts, &clusters, &mut q));
        }
        if let [Some(db), Some(ledger)] = at.as_slice() {
            if db == ledger {
                p(format!(
                    "its erasure ledger is in Cluster {db} with its database: it must be a cluster of its own, \
                     which a restore of the services' data never touches"
                ));
            }
            db_clusters.insert(db.clone());
            ledger_clusters.insert(ledger.clone());
        }
        uses.insert(name.clone(), at.into_iter().flatten().collect());
    }
    for (secret, comps) in &master_keys {
        if comps.len() > 1 {
            problems.push(format!(
                "{} share the master-key Secret {secret}: each component has its own",
                comps.join(" and ")
            ));
        }
    }
    if let Some((name, found)) = &job {
        for (cluster, theirs, what) in
            [(&found[0], &db_clusters, "databases"), (&found[1], &ledger_clusters, "erasure ledgers")]
        {
            if let Some(cluster) = cluster
                && !theirs.is_empty()
                && !theirs.contains(cluster)
            {
                problems.push(format!(
                    "Job/{name} migrates Cluster {cluster}, but the components' {what} are in {theirs:?}"
                ));
            }
        }
        uses.insert(name.clone(), found.iter().flatten().cloned().collect());
    }
    // PostgreSQL pods: reachable only from Samskab's pods, their own instances and the operator.
    let policies: Vec<&Value> = of_kind("NetworkPolicy").collect();
    let typed = |p: &Value, t: &str| strings(&p["spec"]["policyTypes"]).iter().any(|x| x == t);
    for cluster in clusters.keys() {
        let labels = json!({"cnpg.io/cluster": cluster});
        let rules: Vec<&Value> = policies
            .iter()
            .filter(|p| typed(p, "Ingress") && labels_match(&p["spec"]["podSelector"], &labels))
            .flat_map(|p| p["spec"]["ingress"].as_array().into_iter().flatten())
            .collect();
        if !policies.iter().any(|p| typed(p, "Ingress") && labels_match(&p["spec"]["podSelector"], &labels)) {
            problems.push(format!("no NetworkPolicy restricts ingress to the PostgreSQL pods of Cluster {cluster}"));
            continue;
        }
        for rule in &rules {
            let from = rule["from"].as_array().cloned().unwrap_or_default();
            if from.is_empty() {
                problems.push(format!("NetworkPolicy lets anyone reach the PostgreSQL pods of Cluster {cluster}"));
            }
            for peer in &from {
                if let Some(m) = broad_peer(peer) {
                    problems.push(format!("NetworkPolicy lets {m} reach the PostgreSQL pods of Cluster {cluster}"));
                }
            }
        }
        for (w, used) in &uses {
            if used.contains(cluster) && !rules_allow(&rules, "from", None, &pod_labels(w), 5432, "TCP") {
                problems
                    .push(format!("no NetworkPolicy lets {w} into the PostgreSQL pods of Cluster {cluster} on 5432"));
            }
        }
    }
    // Egress: what each component (and the Job) needs, nothing wider; the internet for the
    // gateway only, and its SMTP ports for notify, less the private ranges.
    let mut senders: Vec<(String, Option<String>)> =
        deployments.iter().filter(|(_, d)| d.1.is_some()).map(|(n, d)| (n.clone(), d.1.clone())).collect();
    senders.extend(job.iter().map(|(n, _)| (n.clone(), None)));
    for (w, comp) in &senders {
        let gateway = comp.as_deref() == Some("gateway");
        // Notify sends e-mail to an SMTP relay outside the cluster: on its ports only.
        let notify = comp.as_deref() == Some("notify");
        let labels = pod_labels(w);
        let selecting: Vec<&&Value> = policies
            .iter()
            .filter(|p| typed(p, "Egress") && labels_match(&p["spec"]["podSelector"], &labels))
            .collect();
        if selecting.is_empty() {
            problems.push(format!("no NetworkPolicy restricts egress of {w}"));
            continue;
        }
        let rules: Vec<&Value> =
            selecting.iter().flat_map(|p| p["spec"]["egress"].as_array().into_iter().flatten()).collect();
        let mut internet = false;
        for rule in &rules {
            let to = rule["to"].as_array().cloned().unwrap_or_default();
            if to.is_empty() {
                problems.push(format!("NetworkPolicy lets {w} send anywhere (an egress rule without `to`)"));
            }
            for peer in &to {
                if let Some(cidr) = peer["ipBlock"]["cidr"].as_str() {
                    if notify {
                        let ports: Vec<Value> = rule["ports"].as_array().cloned().unwrap_or_default();
                        let notify_only = !ports.is_empty()
                            && ports.iter().all(|p| {
                                p["port"].as_u64().is_some_and(|n| NOTIFY_PORTS.contains(&n)) && p["endPort"].is_null()
                            });
                        if !notify_only {
                            let ports: Vec<String> = ports.iter().filter_map(|p| s(&p["port"])).collect();
                            problems.push(format!(
                                "NetworkPolicy lets {w} reach ipBlock {cidr} on ports {ports:?}: notify sends \
                                 outside the cluster only to an SMTP relay, an SMS provider and push services, on \
                                 ports {NOTIFY_PORTS:?}"
                            ));
                            continue;
                        }
                    } else if !gateway {
                        problems.push(format!(
                            "NetworkPolicy lets {w} reach ipBlock {cidr}: only the gateway sends outside the cluster"
                        ));
                        continue;
                    }
                    let private = match cidr {
                        "0.0.0.0/0" => PRIVATE_V4,
                        "::/0" => PRIVATE_V6,
                        _ => {
                            problems.push(format!(
                                "NetworkPolicy lets {w} reach ipBlock {cidr}: only 0.0.0.0/0 or ::/0, less the \
                                 private ranges"
                            ));
                            continue;
                        }
                    };
                    internet |= cidr == "0.0.0.0/0";
                    let except = strings(&peer["ipBlock"]["except"]);
                    for range in private {
                        if !except.iter().any(|e| e == range) {
                            problems.push(format!(
                                "{w}'s egress to {cidr} does not except {range}: a webhook or an e-mail could \
                                 reach a private range"
                            ));
                        }
                    }
                    continue;
                }
                if let Some(m) = broad_peer(peer) {
                    problems.push(format!("NetworkPolicy lets {w} send to {m}"));
                    continue;
                }
                if peer["namespaceSelector"].is_null() {
                    for (other, (d, ..)) in deployments {
                        if other != w
                            && labels_match(&peer["podSelector"], &d["spec"]["template"]["metadata"]["labels"])
                            && !calls.iter().any(|(from, to, _)| from == w && to == other)
                        {
                            problems.push(format!("NetworkPolicy lets {w} send to {other}, which it never calls"));
                        }
                    }
                }
            }
        }
        if gateway && !internet {
            problems.push("the gateway may not reach the internet (webhook deliveries, OpenID Connect issuers)".into());
        }
        if notify && !internet {
            problems.push(format!(
                "{w} may not reach its relay and push services on the internet (ports {NOTIFY_PORTS:?})"
            ));
        }
        let may = |ns: Option<&str>, labels: &Value, port: u16, protocol: &str| {
            rules_allow(&rules, "to", ns, labels, port, protocol)
        };
        if !may(Some("kube-system"), &json!({"k8s-app": "kube-dns"}), 53, "UDP") {
            problems.push(format!("{w} may not resolve names (DNS: kube-system, 53/UDP)"));
        }
        for (_, callee, port) in calls.iter().filter(|(from, ..)| from == w) {
            if !may(None, &pod_labels(callee), *port, "TCP") {
                problems.push(format!("{w} may not reach {callee} on {port}, which it calls"));
            }
        }
        for cluster in uses.get(w).into_iter().flatten() {
            if !may(None, &json!({"cnpg.io/cluster": cluster}), 5432, "TCP") {
                problems.push(format!("{w} may not reach the PostgreSQL pods of Cluster {cluster}"));
            }
        }
        if let Some(Some(endpoint)) = workload_env.get(w).and_then(|e| e.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
            && let Some((host, port)) = host_port(endpoint)
        {
            // `<service>.<namespace>.svc`: a Service in another namespace.
            let ns = host.split('.').nth(1);
            if !may(ns, &json!({}), port, "TCP") {
                problems.push(format!("{w} may not reach the OpenTelemetry collector {endpoint}"));
            }
        }
    }
}

#[test]
fn kubernetes_base_agrees_with_the_binaries() {
    let r = Reference::load();
    let problems = k8s_problems(&root().join("deploy/k8s/base"), &r);
    assert!(problems.is_empty(), "deploy/k8s/base disagrees with the binaries:\n  {}", problems.join("\n  "));
}

#[test]
fn kubernetes_production_overlay_agrees_with_the_binaries() {
    let r = Reference::load();
    let dir = root().join("deploy/k8s/overlays/production");
    let problems = k8s_problems(&dir, &r);
    assert!(
        problems.is_empty(),
        "deploy/k8s/overlays/production disagrees with the binaries:\n  {}",
        problems.join("\n  ")
    );
    let mut p = Vec::new();
    let k = kustomize(&dir, &mut p);
    let (name, tag) = k.images.get(OUR_IMAGE).cloned().expect("the overlay sets our image");
    assert!(name.is_some_and(|n| n.contains('/')), "production pulls our image from a registry");
    assert!(tag.is_some_and(|t| t != "latest"), "production pins our image's tag");
    for o in k.objects.iter().filter(|o| o["kind"] == "Secret") {
        assert!(
            !o.to_string().contains("REPLACE-ME"),
            "production applies the placeholder Secret {}: `kubectl apply -k` would write it over the real one",
            o["metadata"]["name"]
        );
    }
    let ingress: Vec<&Value> = k.objects.iter().filter(|o| o["kind"] == "Ingress").collect();
    assert_eq!(ingress.len(), 1, "production exposes the gateway through one Ingress");
    // The API and its documentation only: the probes and metrics stay inside the cluster.
    let public: BTreeSet<(String, String)> = ingress[0]["spec"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["http"]["paths"].as_array().unwrap())
        .map(|p| (p["path"].as_str().unwrap().to_owned(), p["pathType"].as_str().unwrap().to_owned()))
        .collect();
    let expected: BTreeSet<(String, String)> =
        [("/v1/", "Prefix"), ("/openapi.json", "Exact"), ("/docs", "Prefix")].map(|(p, t)| (p.into(), t.into())).into();
    assert_eq!(public, expected, "the Ingress routes exactly the API, its document and the docs");
    for path in
        ingress[0]["spec"]["rules"].as_array().unwrap().iter().flat_map(|r| r["http"]["paths"].as_array().unwrap())
    {
        let svc = path["backend"]["service"]["name"].as_str().unwrap();
        assert_eq!(svc, "samskab-gateway", "the Ingress routes only to the gateway");
        let port = path["backend"]["service"]["port"]["name"].as_str().expect("a named Service port");
        let gw = k.objects.iter().find(|o| o["kind"] == "Service" && o["metadata"]["name"] == svc).unwrap();
        assert!(
            gw["spec"]["ports"].as_array().unwrap().iter().any(|p| p["name"] == port),
            "Service {svc} has no port {port}"
        );
    }
    // Both clusters backed up, apart (their own destination and credentials), the erasure
    // ledger's kept at least as long as the services' database's.
    let gateway_env = |var: &str| {
        let d = k.objects.iter().find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "samskab-gateway");
        let env = d.unwrap()["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap().clone();
        let url = env.iter().find(|e| e["name"] == var).and_then(|e| e["value"].as_str()).unwrap().to_owned();
        pg_url(&url).unwrap().host.split('.').next().unwrap().trim_end_matches("-rw").to_owned()
    };
    let backup = |cluster: &str| {
        let c = k.objects.iter().find(|o| o["kind"] == "Cluster" && o["metadata"]["name"] == cluster);
        let b = c.unwrap_or_else(|| panic!("no Cluster {cluster}"))["spec"]["backup"].clone();
        let store = &b["barmanObjectStore"];
        let path = store["destinationPath"].as_str().unwrap_or_else(|| panic!("production backs up Cluster {cluster}"));
        let credentials = store["s3Credentials"]["secretAccessKey"]["name"].as_str().unwrap_or_default().to_owned();
        let retention =
            b["retentionPolicy"].as_str().unwrap_or_else(|| panic!("Cluster {cluster}: no retentionPolicy"));
        let (n, unit) = retention.split_at(retention.len() - 1);
        let days = n.parse::<u32>().unwrap()
            * match unit {
                "d" => 1,
                "w" => 7,
                "m" => 30,
                u => panic!("Cluster {cluster}: retention unit {u}"),
            };
        (path.to_owned(), credentials, days)
    };
    let (db, ledger) =
        (backup(&gateway_env("SAMSKAB_GATEWAY_DATABASE_URL")), backup(&gateway_env("SAMSKAB_ERASURE_LEDGER_URL")));
    assert!(
        !db.0.starts_with(&ledger.0) && !ledger.0.starts_with(&db.0),
        "the erasure ledger's backups ({}) must be apart from the services' database's ({})",
        ledger.0,
        db.0
    );
    assert_ne!(db.1, ledger.1, "the erasure ledger's backups have their own credentials");
    assert!(ledger.2 >= db.2, "the erasure ledger's backups are kept at least as long as the database's");
}

/// The check must be able to fail: a broken copy of each kind of setting is caught.
#[test]
fn the_check_catches_mistakes() {
    let r = Reference::load();
    let compose = yaml_docs(&root().join("deploy/docker-compose.yml")).unwrap().remove(0);
    assert_eq!(compose_problems(&compose, &r), Vec::<String>::new());
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut c = compose.clone();
        edit(&mut c);
        compose_problems(&c, &r)
    };
    let cases: Vec<Mistake> = vec![
        (
            "SAMSKAB_BOKING_LISTEN",
            Box::new(|c| {
                c["services"]["booking"]["environment"]["SAMSKAB_BOKING_LISTEN"] = json!("0.0.0.0:50051");
            }),
        ),
        (
            "no flag --port",
            Box::new(|c| c["services"]["gateway"]["command"] = json!(["samskab-gateway", "--port", "8080"])),
        ),
        (
            "listens on port 8081",
            Box::new(|c| {
                c["services"]["gateway"]["command"] = json!(["samskab-gateway", "--listen", "0.0.0.0:8081"]);
            }),
        ),
        (
            "loopback only",
            Box::new(|c| {
                c["services"]["carehome"]["environment"].as_object_mut().unwrap().remove("SAMSKAB_CAREHOME_LISTEN");
            }),
        ),
        (
            "not a gateway operations route",
            Box::new(|c| {
                c["services"]["gateway"]["healthcheck"]["test"] =
                    json!(["CMD", "curl", "-fsS", "http://127.0.0.1:8080/health"]);
            }),
        ),
        (
            "but volunteer listens on 50052",
            Box::new(|c| {
                c["services"]["booking"]["environment"]["SAMSKAB_VOLUNTEER_URL"] = json!("http://volunteer:50053");
            }),
        ),
        (
            "`latest` is not pinned",
            Box::new(|c| c["services"]["jaeger"]["image"] = json!("jaegertracing/all-in-one:latest")),
        ),
        ("from a foreign image", Box::new(|c| c["services"]["booking"]["image"] = json!("example/other:1.0"))),
        (
            "but notify listens on 50054",
            Box::new(|c| {
                c["services"]["gateway"]["environment"]["SAMSKAB_NOTIFY_URL"] = json!("http://notify:50051");
            }),
        ),
        (
            "SAMSKAB_NOTIFY_URL points at booking",
            Box::new(|c| {
                c["services"]["gateway"]["environment"]["SAMSKAB_NOTIFY_URL"] = json!("http://booking:50051");
            }),
        ),
        (
            "not the `notify` schema",
            Box::new(|c| {
                c["services"]["notify"]["environment"]["SAMSKAB_NOTIFY_DATABASE_URL"] =
                    json!("postgres://samskab:samskab@postgres:5432/samskab?schema=booking");
            }),
        ),
        (
            "docker-compose.yml runs no notify",
            Box::new(|c| {
                c["services"].as_object_mut().unwrap().remove("notify");
                c["services"]["gateway"]["depends_on"].as_object_mut().unwrap().remove("notify");
                c["services"]["gateway"]["environment"].as_object_mut().unwrap().remove("SAMSKAB_NOTIFY_URL");
            }),
        ),
        (
            "not the `booking` schema",
            Box::new(|c| {
                c["services"]["booking"]["environment"]["SAMSKAB_BOOKING_DATABASE_URL"] =
                    json!("postgres://samskab:samskab@postgres:5432/samskab?schema=bookings");
            }),
        ),
    ];
    for (expect, edit) in cases {
        let problems = broken(&*edit);
        assert!(
            problems.iter().any(|p| p.contains(expect)),
            "breaking compose ({expect}) was not caught: {problems:?}"
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// The same for the Kubernetes manifests: each mistake, made in a copy, is caught.
#[test]
fn the_check_catches_kubernetes_mistakes() {
    let r = Reference::load();
    let cases: &[(&str, &str, &str, &str)] = &[
        ("booking.yaml", "\"0.0.0.0:50051\"", "\"0.0.0.0:50055\"", "listens on port 50055"),
        ("gateway.yaml", "path: /readyz", "path: /ready", "not a gateway operations route"),
        ("gateway.yaml", "key: SAMSKAB_JWT_KEYS", "key: SAMSKAB_JWT_KEY", "has no such key"),
        ("gateway.yaml", "name: SAMSKAB_RATE_LIMIT_PER_MINUTE", "name: SAMSKAB_RATE_LIMIT", "sets SAMSKAB_RATE_LIMIT,"),
        (
            "hpa.yaml",
            "name: samskab-booking\n  minReplicas",
            "name: samskab-bookings\n  minReplicas",
            "which is no Deployment",
        ),
        (
            "networkpolicy.yaml",
            "values: [samskab-gateway, samskab-notify]\n",
            "values: [samskab-volunteer, samskab-notify]\n",
            "the gateway may not reach samskab-booking",
        ),
        (
            "networkpolicy.yaml",
            "values: [samskab-gateway, samskab-notify]\n",
            "values: [samskab-gateway, samskab-notify, samskab-carehome]\n",
            "lets samskab-carehome reach samskab-booking, which it never calls",
        ),
        // Notify: follows booking's feed, is called by the gateway only.
        (
            "networkpolicy.yaml",
            "values: [samskab-gateway, samskab-notify]\n",
            "values: [samskab-gateway]\n",
            "NetworkPolicy keeps samskab-notify from samskab-booking, which it calls",
        ),
        (
            "networkpolicy.yaml",
            "values: [samskab-gateway]\n",
            "values: [samskab-gateway, samskab-booking]\n",
            "lets samskab-booking reach samskab-notify, which it never calls",
        ),
        (
            "networkpolicy.yaml",
            "              app.kubernetes.io/name: samskab-notify\n      ports:\n        - port: 50054\n",
            "              app.kubernetes.io/name: samskab-booking\n      ports:\n        - port: 50054\n",
            "samskab-gateway may not reach samskab-notify on 50054",
        ),
        ("notify.yaml", "\"0.0.0.0:50054\"", "\"0.0.0.0:50055\"", "listens on port 50055"),
        // Notify's e-mail: settings no other binary reads stay out of the shared ConfigMap;
        // the relay's password is a file of its own Secret; the relay only on SMTP ports of
        // public addresses.
        (
            "configmap.yaml",
            "  SAMSKAB_LOG: info\n",
            "  SAMSKAB_LOG: info\n  SAMSKAB_SMTP_URL: smtp://relay:25\n",
            "envFrom brings SAMSKAB_SMTP_URL, which `samskab-gateway` does not read",
        ),
        (
            "notify.yaml",
            "            - name: smtp\n              mountPath: /etc/samskab/smtp\n              readOnly: true\n",
            "",
            "SAMSKAB_SMTP_PASSWORD_FILE=/etc/samskab/smtp/password is not in a mounted Secret",
        ),
        (
            "networkpolicy.yaml",
            "        - port: 587\n",
            "        - port: 8443\n",
            "only to an SMTP relay, an SMS provider",
        ),
        (
            "networkpolicy.yaml",
            "              - \"::1/128\"\n      ports:\n        - port: 25\n",
            "      ports:\n        - port: 25\n",
            "samskab-notify's egress to ::/0 does not except ::1/128",
        ),
        (
            "certificates.yaml",
            "dnsNames: [notify.samskab.internal]",
            "dnsNames: [samskab-notify]",
            "verify the notify by",
        ),
        (
            "notify.yaml",
            "name: samskab-notify-keys\n                  key: SAMSKAB_MASTER_KEY",
            "name: samskab-booking-keys\n                  key: SAMSKAB_MASTER_KEY",
            "share the master-key Secret samskab-booking-keys",
        ),
        (
            "carehome.yaml",
            "readinessProbe:\n            tcpSocket:\n              port: 50053\n",
            "readinessProbe:\n            grpc:\n              port: 50053\n              service: samskab.booking.v1.BookingService\n",
            "not one of",
        ),
        // Mutual TLS: kubelet has no client certificate for a gRPC probe.
        (
            "carehome.yaml",
            "readinessProbe:\n            tcpSocket:",
            "readinessProbe:\n            grpc:",
            "kubelet cannot present",
        ),
        ("kustomization.yaml", "  - hpa.yaml\n", "  - hpa.yaml\n  - missing.yaml\n", "missing.yaml does not exist"),
        (
            "configmap.yaml",
            "  SAMSKAB_LOG: info\n",
            "  SAMSKAB_LOG: info\n  SAMSKAB_BOOKING_URL: x\n",
            "envFrom brings SAMSKAB_BOOKING_URL",
        ),
        ("postgres-cluster.yaml", "instances: 3", "instances: 2", "3 instances"),
        ("migrate-job.yaml", "- --database-url\n", "- --database\n", "has no flag --database"),
        // Mutual TLS: a component without its certificate's mount, with a subPath mount, in
        // plain text, or with a certificate for another name or without client auth.
        (
            "carehome.yaml",
            "            - name: tls\n              mountPath: /etc/samskab/tls\n              readOnly: true\n",
            "",
            "SAMSKAB_TLS_CERT=/etc/samskab/tls/tls.crt is not in a mounted Secret",
        ),
        (
            "booking.yaml",
            "              mountPath: /etc/samskab/tls\n",
            "              mountPath: /etc/samskab/tls/tls.crt\n              subPath: tls.crt\n",
            "with subPath",
        ),
        (
            "gateway.yaml",
            "            - name: SAMSKAB_RATE_LIMIT_PER_MINUTE\n",
            "            - name: SAMSKAB_INSECURE_PLAINTEXT\n              value: \"true\"\n            - name: SAMSKAB_RATE_LIMIT_PER_MINUTE\n",
            "sets SAMSKAB_INSECURE_PLAINTEXT",
        ),
        (
            "certificates.yaml",
            "dnsNames: [volunteer.samskab.internal]",
            "dnsNames: [volunteer.samskab.internal, samskab-volunteer]",
            "the binaries verify the volunteer by exactly",
        ),
        (
            "certificates.yaml",
            "usages: [digital signature, key encipherment, server auth, client auth]",
            "usages: [digital signature, key encipherment, server auth]",
            "lacks the usage `client auth`",
        ),
        (
            "certificates.yaml",
            "secretName: samskab-booking-tls\n  issuerRef:\n    name: samskab-internal\n",
            "secretName: samskab-booking-tls\n  issuerRef:\n    name: samskab-selfsigned\n",
            "not by the internal CA",
        ),
        // Databases: the component's own role, verified TLS, its own password, never the
        // owner's credentials; the erasure ledger in a cluster of its own, in its own schema.
        (
            "volunteer.yaml",
            "schema=volunteer&sslmode=verify-full",
            "schema=volunteer&sslmode=require",
            "not verify-full",
        ),
        (
            "booking.yaml",
            "postgres://samskab_booking@samskab-pg-rw",
            "postgres://samskab_gateway@samskab-pg-rw",
            "not the component's own role samskab_booking",
        ),
        (
            "carehome.yaml",
            "name: samskab-pg-carehome\n                  key: password",
            "name: samskab-pg-app\n                  key: password",
            "the database owner's credentials",
        ),
        (
            "gateway.yaml",
            "sslrootcert=/etc/samskab/pg-ca/ca.crt",
            "sslrootcert=/etc/ssl/certs/ca-certificates.crt",
            "is not in a mounted Secret",
        ),
        (
            "booking.yaml",
            "            secretName: samskab-pg-ca\n            items:\n              - key: ca.crt\n                path: ca.crt\n",
            "            secretName: samskab-pg-ca\n",
            "holds the CA's private key",
        ),
        (
            "gateway.yaml",
            "samskab_gateway@samskab-ledger-pg-rw:5432/ledger?schema=erasure_ledger_gateway&sslmode=verify-full&sslrootcert=/etc/samskab/ledger-ca/ca.crt",
            "samskab_gateway@samskab-pg-rw:5432/samskab?schema=erasure_ledger_gateway&sslmode=verify-full&sslrootcert=/etc/samskab/pg-ca/ca.crt",
            "it must be a cluster of its own",
        ),
        ("carehome.yaml", "schema=erasure_ledger_carehome", "schema=erasure_ledger", "not erasure_ledger_carehome"),
        ("postgres-cluster.yaml", "superuser: false", "superuser: true", "has superuser"),
        (
            "ledger-cluster.yaml",
            "- name: samskab_volunteer\n",
            "- name: samskab_volunteers\n",
            "Cluster samskab-ledger-pg manages no role samskab_volunteer",
        ),
        (
            "migrate-job.yaml",
            "$(LEDGER_URI)?schema=erasure_ledger&sslmode=verify-full",
            "$(LEDGER_URI)?schema=erasure_ledger&sslmode=disable",
            "--erasure-ledger-url: sslmode=disable, not verify-full",
        ),
        ("migrate-job.yaml", "            - --grant-roles\n", "", "without --grant-roles"),
        // Master keys: one Secret per component, read by that component only.
        (
            "volunteer.yaml",
            "name: samskab-volunteer-keys",
            "name: samskab-carehome-keys",
            "carehome and volunteer share the master-key Secret samskab-carehome-keys",
        ),
        // The network: PostgreSQL pods fenced; every component's egress restricted; the
        // gateway's internet without the private ranges.
        (
            "networkpolicy.yaml",
            "      cnpg.io/cluster: samskab-ledger-pg\n  policyTypes",
            "      cnpg.io/cluster: samskab-ledger\n  policyTypes",
            "no NetworkPolicy restricts ingress to the PostgreSQL pods of Cluster samskab-ledger-pg",
        ),
        (
            "networkpolicy.yaml",
            "      app.kubernetes.io/name: samskab-carehome\n  policyTypes: [\"Egress\"]",
            "      app.kubernetes.io/name: samskab-carehomes\n  policyTypes: [\"Egress\"]",
            "no NetworkPolicy restricts egress of samskab-carehome",
        ),
        ("networkpolicy.yaml", "              - 10.0.0.0/8\n", "", "does not except 10.0.0.0/8"),
        (
            "networkpolicy.yaml",
            "      app.kubernetes.io/name: samskab-carehome\n  policyTypes: [\"Egress\"]\n  egress:\n",
            "      app.kubernetes.io/name: samskab-carehome\n  policyTypes: [\"Egress\"]\n  egress:\n    - to:\n        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: samskab-booking\n",
            "lets samskab-carehome send to samskab-booking, which it never calls",
        ),
        (
            "networkpolicy.yaml",
            "      app.kubernetes.io/name: samskab-volunteer\n  policyTypes: [\"Egress\"]\n  egress:\n",
            "      app.kubernetes.io/name: samskab-volunteer\n  policyTypes: [\"Egress\"]\n  egress:\n    - to:\n        - ipBlock:\n            cidr: 0.0.0.0/0\n",
            "only the gateway sends outside the cluster",
        ),
        (
            "networkpolicy.yaml",
            "      cnpg.io/cluster: samskab-pg\n  policyTypes: [\"Ingress\"]\n  ingress:\n",
            "      cnpg.io/cluster: samskab-pg\n  policyTypes: [\"Ingress\"]\n  ingress:\n    - {}\n",
            "lets anyone reach the PostgreSQL pods of Cluster samskab-pg",
        ),
        (
            "networkpolicy.yaml",
            "        - port: 53\n          protocol: UDP\n",
            "        - port: 5353\n          protocol: UDP\n",
            "may not resolve names",
        ),
        ("certificates.yaml", "secretName: samskab-volunteer-tls", "secretName: samskab-carehome-tls", "is written by"),
        (
            "secret.yaml",
            "  name: samskab-volunteer-keys\n",
            "  name: samskab-pg-volunteer\n",
            "the manifests ship the password of role samskab_volunteer",
        ),
        (
            "networkpolicy.yaml",
            "            cidr: 0.0.0.0/0\n",
            "            cidr: 10.0.0.0/8\n",
            "reach ipBlock 10.0.0.0/8",
        ),
        ("volunteer.yaml", "containerPort: 50052", "containerPort: 50053", "declares ports"),
    ];
    for (file, from, to, expect) in cases {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&root().join("deploy/k8s"), tmp.path());
        let path = tmp.path().join("base").join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} no longer contains {from:?}: update this test");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        let problems = k8s_problems(&tmp.path().join("base"), &r);
        assert!(
            problems.iter().any(|p| p.contains(expect)),
            "breaking {file} ({expect}) was not caught: {problems:#?}"
        );
    }
}
