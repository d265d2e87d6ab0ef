//! Test support shared by every suite of the workspace: throwaway databases (one per test,
//! on both backends), [`both_backends!`] to declare a test once per backend,
//! [`eventually`] to wait on an observable outcome instead of sleeping, and [`oidc`], a
//! real OpenID Provider for tests of OIDC sign-in.
//!
//! PostgreSQL comes from `SAMSKAB_TEST_PG_URL` (set by `scripts/test`, which starts a
//! server of its own); each test gets a fresh schema in it and drops it afterwards. Without
//! the variable, PostgreSQL tests skip, except under `CI=true`, where they fail: CI must
//! never pass by skipping.

use std::path::PathBuf;

mod backends;
mod eventually;
pub mod node;
pub mod oidc;
pub mod plans;
pub mod push;
pub mod sms;
pub mod smtp;

pub use eventually::{DEFAULT_TIMEOUT, Outcome, eventually};

/// The environment variable naming the test PostgreSQL server.
pub const PG_URL_VAR: &str = "SAMSKAB_TEST_PG_URL";

/// Which backend a test database uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh schema in the test PostgreSQL server.
    Postgres,
}

/// A database that exists for one test. Dropping it removes it.
pub struct TestDb {
    /// The URL to connect to (for PostgreSQL with `?schema=` so the test is isolated).
    pub url: String,
    /// The backend.
    pub backend: Backend,
    /// For PostgreSQL, the schema's name.
    pub schema: Option<String>,
    dir: Option<tempfile::TempDir>,
    server_url: Option<String>,
}

impl TestDb {
    /// A fresh SQLite file.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("events.db").display());
        TestDb { url, backend: Backend::Sqlite, schema: None, dir: Some(dir), server_url: None }
    }

    /// A fresh schema on the test PostgreSQL server, or `None` (test skipped) when no
    /// server is configured outside CI. Panics under `CI=true` without a server.
    pub fn postgres() -> Option<TestDb> {
        let server = pg_server_url()?;
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let sep = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{sep}schema={schema}");
        Some(TestDb { url, backend: Backend::Postgres, schema: Some(schema), dir: None, server_url: Some(server) })
    }

    /// Another URL in the same place (another SQLite file, another schema), for a second
    /// database of the same test, such as one per service.
    pub fn sibling(&self, name: &str) -> String {
        match (&self.dir, &self.server_url, &self.schema) {
            (Some(dir), _, _) => format!("sqlite://{}", dir.path().join(format!("{name}.db")).display()),
            (None, Some(server), Some(schema)) => {
                let sep = if server.contains('?') { '&' } else { '?' };
                format!("{server}{sep}schema={schema}_{name}")
            }
            _ => unreachable!("a test database is either a file or a schema"),
        }
    }

    /// A directory that lives as long as this database (SQLite) or a new temp dir.
    pub fn dir(&self) -> PathBuf {
        match &self.dir {
            Some(d) => d.path().to_path_buf(),
            None => std::env::temp_dir(),
        }
    }

    /// The plain server URL (PostgreSQL only).
    pub fn server_url(&self) -> Option<&str> {
        self.server_url.as_deref()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (Some(server), Some(schema)) = (self.server_url.clone(), self.schema.clone()) else { return };
        // Best effort, on a thread of its own: Drop may run inside or outside a runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&server).await.ok()?;
                let like = format!("{schema}%");
                let schemas: Vec<String> =
                    sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1")
                        .bind(like)
                        .fetch_all(&mut c)
                        .await
                        .ok()?;
                for s in schemas {
                    let sql = format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE");
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut c).await.ok()?;
                }
                c.close().await.ok()
            })
        })
        .join();
    }
}

/// The test server's URL, `None` outside CI without one; panics in CI without one.
pub fn pg_server_url() -> Option<String> {
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("CI=true but {PG_URL_VAR} is not set: PostgreSQL tests must run in CI (use scripts/test)")
        }
        _ => {
            eprintln!("skipping a PostgreSQL test: {PG_URL_VAR} is not set (scripts/test sets it)");
            None
        }
    }
}

/// Both backends, for tests that loop over them; PostgreSQL only when available.
pub fn all_backends() -> Vec<TestDb> {
    let mut v = vec![TestDb::sqlite()];
    v.extend(TestDb::postgres());
    v
}

/// The default setup of [`both_backends!`]: the test body gets the [`TestDb`] itself.
pub async fn raw(db: TestDb) -> TestDb {
    db
}

/// A loopback port that is free now, for a process the test starts, chosen **outside the
/// kernel's ephemeral range** (32768–60999 by default): a port the kernel hands out for
/// `bind(0)` is also what it hands to outgoing connections, so between picking it and the
/// child binding it another test's connection could take it ("Address already in use").
/// Ports 20000–32767 are never given to outgoing connections. The pick is checked by
/// binding it, and **claimed** for ten minutes across the test processes (a file per port
/// under the temp dir, created exclusively): a random start alone let two tests picking at
/// once meet, and a gateway then answered another test's requests (seen in CI).
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.write_u32(std::process::id());
    let start = h.finish();
    let claims = std::env::temp_dir().join("samskab-test-ports");
    let _ = std::fs::create_dir_all(&claims);
    (0..12768u64)
        .map(|i| 20000 + ((start + i) % 12768) as u16)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok() && claim(&claims.join(p.to_string())))
        .expect("a free port in 20000-32767")
}

/// Claims a port's file: creates it, or takes it over once it is ten minutes old.
/// Where the directory cannot be written, every port counts as claimed by the caller.
fn claim(file: &std::path::Path) -> bool {
    let create = || std::fs::OpenOptions::new().write(true).create_new(true).open(file);
    match create() {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let stale = std::fs::metadata(file)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > std::time::Duration::from_secs(600)));
            stale && std::fs::remove_file(file).is_ok() && create().is_ok()
        }
        Err(_) => true,
    }
}
