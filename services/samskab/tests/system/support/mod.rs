//! Helpers shared by the tests that run the `samskab` binary as processes.

use std::path::Path;
use std::time::Duration;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_samskab");

/// Separate processes share their secrets through the environment (a Kubernetes Secret in
/// production), not through a data directory they would race to create them in; an
/// all-in-one given them signs and accepts the same tokens.
pub const SHARED_SECRETS: [(&str, &str); 3] = [
    ("SAMSKAB_MASTER_KEY", "7c1e4b9a2f6d08e35a7b91c4d2e6f03819ab5c7e2d4f6a8b0c1e3d5f7a9b2c4d"),
    ("SAMSKAB_JWT_SECRET", "k1=5e0c9b7a1d3f4e6a8c2b9d7f1e3a5c7b"),
    ("SAMSKAB_PERSON_KEY", "d41f6a2c8e0b7d9a3c5e1f7b9d2a4c6e8f0b1d3a5c7e9f2b4d6a8c0e1f3b5d7a"),
];

/// Components run by the tests in plain text on loopback (`tls.rs` runs them over mutual
/// TLS and attacks them).
pub const PLAINTEXT: (&str, &str) = ("SAMSKAB_INSECURE_PLAINTEXT", "true");

/// An HTTP client. reqwest is linked with rustls without a built-in crypto provider (the
/// gateway delivers webhooks over TLS with ring): install it before building clients.
pub fn client(timeout: Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

pub use testkit::free_port;

/// `samskab token ARGS` for processes that share their secrets through the environment.
pub fn shared_token(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(BIN)
        .arg("token")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .envs(SHARED_SECRETS)
        .output()
        .unwrap();
    assert!(out.status.success(), "samskab token: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().split_whitespace().last().unwrap().to_owned()
}
