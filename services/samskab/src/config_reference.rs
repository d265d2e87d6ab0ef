//! `samskab config-reference` (hidden): every flag and environment variable of every
//! Samskab binary, generated from the clap definitions, as the Markdown of
//! docs/configuration.md or (`--json`) as data for the deployment check
//! (services/samskab/tests/system/deploy.rs).
//!
//! The separate service binaries are rebuilt here from the same `clap::Args` structs their
//! `main.rs` flatten (`Config` plus servicekit's operator subcommands), so a flag added to a
//! `Config` shows up in both places.

use clap::{ArgAction, Args, CommandFactory, Subcommand};
use serde_json::{Value, json};

/// Every binary (each keeps keys).
const ALL: &[&str] =
    &["samskab", "samskab-booking", "samskab-carehome", "samskab-volunteer", "samskab-gateway", "samskab-notify"];
const EVERY: &[&str] = ALL;
const TOKENS: &[&str] = &["samskab", "samskab-gateway"];

/// Variables read outside the flags: name, binaries that read it, default, description.
const EXTRA_ENV: &[(&str, &[&str], &str, &str)] = &[
    (
        "SAMSKAB_MASTER_KEY",
        ALL,
        "",
        "The master key (64 hex digits) that wraps every per-subject key. Wins over SAMSKAB_MASTER_KEY_FILE. Without either, `master.key` in the data directory: `samskab serve` generates it on first start; a component run on its own refuses to start without one (`samskab keys --out DIR` writes one). Separate processes must share one key. Every key variable refuses values published with Samskab, values shorter than 32 characters, one character repeated or a run of consecutive characters; a key variable that is set but empty is an error.",
    ),
    ("SAMSKAB_MASTER_KEY_FILE", ALL, "", "A file holding the master key (for mounted secrets)."),
    (
        "SAMSKAB_JWT_KEYS",
        TOKENS,
        "",
        "Token signing keys, `kid=secret;kid2=secret2` (the first signs, all verify; each secret at least 32 characters). Wins over SAMSKAB_JWT_SECRET. Without either, `jwt.keys` in the data directory (generated on first start by `samskab serve` only).",
    ),
    ("SAMSKAB_JWT_SECRET", TOKENS, "", "One token signing key, `secret` or `kid=secret` (kid `k1` when omitted)."),
    (
        "SAMSKAB_PERSON_KEY",
        TOKENS,
        "",
        "The deployment's person key (64 hex digits): `person_id` = UUIDv8 of HMAC-SHA256(this key, issuer ‖ 0x00 ‖ subject). Without it, `person.key` in the data directory (generated on first start by `samskab serve` only; a gateway run on its own refuses to start without one). Gateways that share a deployment must share it; changing it gives everyone new person ids (their grants stay with the old ones).",
    ),
    (
        "SAMSKAB_TEST_CLOCK_FILE",
        EVERY,
        "",
        "Test builds only (cargo feature `test-clock`, never the release build or the image): a file holding seconds to add to the clock, so that tests can move time (docs/testing.md). Ignored by every other build.",
    ),
    ("SAMSKAB_LOG", EVERY, "info", "Log filter (tracing `EnvFilter` syntax, e.g. `info,booking=debug`)."),
    ("RUST_LOG", EVERY, "", "Log filter when SAMSKAB_LOG is not set."),
    (
        "SAMSKAB_LOG_FORMAT",
        EVERY,
        "text",
        "`json` for one JSON object per line with trace and span ids (production), else text.",
    ),
    (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        EVERY,
        "",
        "OTLP/gRPC collector (e.g. `http://otel-collector:4317`) for spans and metrics; nothing is exported unless this or a signal's own endpoint is set.",
    ),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", EVERY, "", "OTLP/gRPC endpoint for traces only; wins over the general one."),
    (
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        EVERY,
        "",
        "OTLP/gRPC endpoint for metrics only; wins over the general one.",
    ),
    (
        "OTEL_EXPORTER_OTLP_HEADERS",
        EVERY,
        "",
        "Headers sent to the collector (`key=value,...`), read by the OTLP exporter.",
    ),
    ("OTEL_SERVICE_NAME", EVERY, "", "Service name of the spans (the binary's component name by default)."),
    (
        "OTEL_RESOURCE_ATTRIBUTES",
        EVERY,
        "",
        "Extra resource attributes (`key=value,...`), e.g. `deployment.environment=production`.",
    ),
    ("OTEL_TRACES_SAMPLER", EVERY, "parentbased_always_on", "Sampler, read by the OpenTelemetry SDK."),
    ("OTEL_TRACES_SAMPLER_ARG", EVERY, "", "Sampler argument (e.g. the ratio of `parentbased_traceidratio`)."),
];

fn binaries() -> Vec<clap::Command> {
    let service = |name: &'static str, about: &'static str, args: fn(clap::Command) -> clap::Command| {
        servicekit::bootstrap::Command::augment_subcommands(args(clap::Command::new(name).about(about)))
    };
    vec![
        crate::Cli::command(),
        service("samskab-booking", "Samskab's booking service (gRPC)", booking::Config::augment_args),
        service("samskab-carehome", "Samskab's care-home service (gRPC)", carehome::Config::augment_args),
        service("samskab-volunteer", "Samskab's volunteer service (gRPC)", volunteer::Config::augment_args),
        gateway::Config::augment_args(clap::Command::new("samskab-gateway").about("Samskab's REST gateway")),
        service("samskab-notify", "Samskab's notify service (gRPC)", notify::Config::augment_args),
    ]
}

/// The arguments of one command (hidden ones too: they are real settings), without help
/// and version.
fn args(cmd: &clap::Command) -> Vec<&clap::Arg> {
    cmd.get_arguments().filter(|a| !matches!(a.get_action(), ArgAction::Help | ArgAction::Version)).collect()
}

fn text(s: Option<&clap::builder::StyledStr>) -> String {
    s.map(|s| s.to_string().split_whitespace().collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

fn defaults(a: &clap::Arg) -> Vec<String> {
    a.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect()
}

fn flag(a: &clap::Arg) -> String {
    let name = match (a.get_long(), a.get_short()) {
        (Some(l), _) => format!("--{l}"),
        (None, Some(s)) => format!("-{s}"),
        (None, None) => format!("<{}>", a.get_id()),
    };
    match a.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse | ArgAction::Count => name,
        _ if a.get_long().is_none() && a.get_short().is_none() => name,
        _ => {
            let value = a
                .get_value_names()
                .and_then(|v| v.first())
                .map_or_else(|| a.get_id().as_str().to_uppercase(), |v| v.to_string());
            format!("{name} <{value}>")
        }
    }
}

/// Every command with its full path (`samskab run booking`), depth first, hidden ones left out.
fn walk<'a>(cmd: &'a clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, &'a clap::Command)>) {
    out.push((path.clone(), cmd));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let mut p = path.clone();
        p.push(sub.get_name().to_owned());
        walk(sub, p, out);
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The Markdown of docs/configuration.md.
pub fn markdown() -> String {
    let mut md = String::new();
    md.push_str("# Configuration reference\n\n");
    md.push_str(
        "<!-- Generated by `samskab config-reference` from the binaries' clap definitions: do not edit.\n     \
         Regenerate: cargo run -q -p samskab -- config-reference > docs/configuration.md -->\n\n",
    );
    md.push_str(
        "Every Samskab binary takes its settings as flags, and every flag that names an environment\n\
         variable can be set by it instead (the flag wins). A few settings, secrets above all, are\n\
         environment variables only; they are listed [at the end](#environment-variables-only).\n\
         Deployments: see deploy/README.md.\n\n",
    );
    md.push_str("Binaries: ");
    md.push_str(&ALL.iter().map(|b| format!("`{b}`")).collect::<Vec<_>>().join(", "));
    md.push_str(" (the all-in-one `samskab` also runs each component: `samskab run <component>`).\n");
    for bin in binaries() {
        let mut cmds = Vec::new();
        walk(&bin, vec![bin.get_name().to_owned()], &mut cmds);
        md.push_str(&format!("\n## `{}`\n\n{}\n", bin.get_name(), text(bin.get_about())));
        for (path, cmd) in cmds {
            let args = args(cmd);
            let subs = cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help").count();
            if args.is_empty() && subs > 0 {
                continue;
            }
            md.push_str(&format!("\n### `{}`\n\n", path.join(" ")));
            if path.len() > 1 {
                md.push_str(&format!("{}\n\n", text(cmd.get_about())));
            }
            if args.is_empty() {
                md.push_str("No flags.\n");
                continue;
            }
            md.push_str("| Flag | Environment variable | Default | Description |\n|---|---|---|---|\n");
            for a in args {
                let env = a.get_env().map(|e| format!("`{}`", e.to_string_lossy())).unwrap_or_default();
                let d = defaults(a);
                let default = if !d.is_empty() && !matches!(a.get_action(), ArgAction::SetTrue) {
                    format!("`{}`", d.join(","))
                } else if a.is_required_set() {
                    "required".to_owned()
                } else {
                    String::new()
                };
                let mut help = text(a.get_help());
                if a.is_hide_set() {
                    help.push_str(" *(hidden from --help: tuning)*");
                }
                md.push_str(&format!("| `{}` | {env} | {default} | {} |\n", cell(&flag(a)), cell(&help)));
            }
        }
    }
    md.push_str("\n## Environment variables only\n\n");
    md.push_str("| Variable | Read by | Default | Description |\n|---|---|---|---|\n");
    for (name, by, default, help) in EXTRA_ENV {
        let by = if *by == ALL {
            "all".to_owned()
        } else {
            by.iter().map(|b| format!("`{b}`")).collect::<Vec<_>>().join(", ")
        };
        let default = if default.is_empty() { String::new() } else { format!("`{default}`") };
        md.push_str(&format!("| `{name}` | {by} | {default} | {} |\n", cell(help)));
    }
    md
}

/// The same as data: `{"binaries": [{"name", "commands": [{"path", "args": [{"long", "env",
/// "default", "takes_value"}]}]}], "env_only": [{"name", "read_by"}]}`.
pub fn json() -> Value {
    let binaries: Vec<Value> = binaries()
        .iter()
        .map(|bin| {
            let mut cmds = Vec::new();
            walk(bin, vec![bin.get_name().to_owned()], &mut cmds);
            let commands: Vec<Value> = cmds
                .iter()
                .map(|(path, cmd)| {
                    let args: Vec<Value> = args(cmd)
                        .iter()
                        .map(|a| {
                            json!({
                                "long": a.get_long(),
                                "env": a.get_env().map(|e| e.to_string_lossy().into_owned()),
                                "default": defaults(a),
                                "takes_value": !matches!(a.get_action(), ArgAction::SetTrue | ArgAction::SetFalse | ArgAction::Count),
                            })
                        })
                        .collect();
                    json!({ "path": path, "args": args })
                })
                .collect();
            json!({ "name": bin.get_name(), "commands": commands })
        })
        .collect();
    let env_only: Vec<Value> =
        EXTRA_ENV.iter().map(|(name, by, _, _)| json!({ "name": name, "read_by": by })).collect();
    json!({ "binaries": binaries, "env_only": env_only })
}
