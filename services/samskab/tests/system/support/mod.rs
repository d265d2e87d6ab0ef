//! Helpers shared by the tests that run the `samskab` binary as processes.

use std::path::Path;
use std::time::Duration;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_samskab");

/// Separate processes share their secrets through the environment (a Kubernetes Secret in
/// production), not through a data directory they would race to create them in; an
/// all-in-one given them signs and accepts the same tokens.
pub const SHARED_SECRETS: [(&str, &str); 2] = [
    ("SAMSKAB_MASTER_KEY", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
    ("SAMSKAB_JWT_SECRET", "k1=a-test-secret-of-enough-length-for-hs256"),
];

/// An HTTP client. reqwest is linked with rustls without a built-in crypto provider (the
/// gateway delivers webhooks over TLS with ring): install it before building clients.
pub fn client(timeout: Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

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
