//! A real SMTP server for tests of e-mail (`tests/smtp-server`: Nodemailer's `smtp-server`
//! on Node.js, its npm packages installed on first use like the OIDC provider's). It
//! listens on loopback, offers STARTTLS when given a certificate (or speaks TLS from the
//! first byte, as `smtps://` expects, when `implicit_tls`), can fail the first
//! messages with 451 and refuses recipients starting with `reject` with 550, and writes
//! every accepted message to a directory the test reads.

use std::path::{Path, PathBuf};

/// The server's directory (`tests/smtp-server` of the workspace).
pub fn server_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/smtp-server")
}

/// How the server is started.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Certificate and key files (PEM): STARTTLS is offered.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// With `tls`: TLS from the connection's first byte (`smtps://`) instead of STARTTLS.
    pub implicit_tls: bool,
    /// The first this many messages are refused with 451.
    pub fail_first: u32,
}

/// A running server; stopped when dropped.
pub struct SmtpServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    _stdin: tokio::process::ChildStdin,
    _child: tokio::process::Child,
}

/// A received message.
#[derive(Debug, Clone)]
pub struct Received {
    /// The envelope's recipients.
    pub to: Vec<String>,
    /// Whether it came over TLS.
    pub secure: bool,
    /// The raw message.
    pub raw: String,
}

impl Received {
    /// The 6-digit code of a confirmation e-mail (on a line of its own in the plain part).
    pub fn code(&self) -> String {
        let text = self.raw.split("text/plain").nth(1).unwrap_or_default();
        let code = text.split(|c: char| !c.is_ascii_digit()).find(|d| d.len() == 6);
        code.unwrap_or_else(|| panic!("no code in {}", self.raw)).to_owned()
    }

    /// The first value of a header (unfolded), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or_default();
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line.trim_start());
                    continue;
                }
                break;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim().to_owned());
            }
        }
        value
    }
}

impl SmtpServer {
    /// Starts a server; panics when Node.js or its packages cannot be had.
    pub async fn start(options: Options) -> SmtpServer {
        let mail = tempfile::tempdir().expect("mail directory");
        let mut args: Vec<std::ffi::OsString> = vec!["--dir".into(), mail.path().into(), "--fail-first".into()];
        args.push(options.fail_first.to_string().into());
        if let Some((cert, key)) = &options.tls {
            args.extend(["--tls-cert".into(), cert.into(), "--tls-key".into(), key.into()]);
            if options.implicit_tls {
                args.push("--secure".into());
            }
        }
        let (child, stdin, line) = crate::node::start("SMTP test server", &server_dir(), &args).await;
        let ready: serde_json::Value = serde_json::from_str(&line).expect("ready line");
        let port = ready["port"].as_u64().expect("port") as u16;
        SmtpServer { port, dir: mail, _stdin: stdin, _child: child }
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        names.sort();
        names
            .into_iter()
            .filter_map(|p| {
                let raw = std::fs::read_to_string(&p).ok()?;
                let meta: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(p.with_extension("json")).ok()?).ok()?;
                let to = meta["to"].as_array()?.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
                Some(Received { to, secure: meta["secure"].as_bool().unwrap_or(false), raw })
            })
            .collect()
    }
}
