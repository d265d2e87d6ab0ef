//! Test servers that run on Node.js (`tests/<server>/server.mjs`: the OIDC provider, the
//! SMTP server): their npm packages installed on first use, the process started, its first
//! stdout line (a JSON "ready" object) read, its log passed to the test's output.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

/// How long a server may take to print its ready line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Installs `dir`'s packages if needed, runs `node server.mjs <args>` there and returns the
/// process (killed when dropped), its stdin (the server exits when it closes) and its
/// ready line. Panics, naming `what`, when Node.js, npm or the server fail.
pub async fn start(
    what: &str,
    dir: &Path,
    args: &[OsString],
) -> (tokio::process::Child, tokio::process::ChildStdin, String) {
    let install_dir = dir.to_owned();
    tokio::task::spawn_blocking(move || crate::oidc::ensure_installed(&install_dir))
        .await
        .expect("npm install task")
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut child = tokio::process::Command::new("node")
        .arg("server.mjs")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot run `node` (Node.js 20 or later is needed): {e}"));
    let stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    // Its log goes to the test's output (captured by the test runner).
    let name = what.to_owned();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{name}: {line}");
        }
    });
    let mut lines = BufReader::new(stdout).lines();
    let line = match tokio::time::timeout(START_TIMEOUT, lines.next_line()).await {
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None)) => panic!("{what} exited before it was ready (its log is above)"),
        Ok(Err(e)) => panic!("{what}: reading its stdout: {e}"),
        Err(_) => panic!("{what} not ready after {START_TIMEOUT:?}"),
    };
    (child, stdin, line)
}
