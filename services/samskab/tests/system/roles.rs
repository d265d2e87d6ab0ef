//! The least-privilege deployment, on the throwaway PostgreSQL with the database roles
//! `deploy/k8s/base/postgres-cluster.yaml` defines: the schemas belong to an owner role that
//! only `samskab migrate --grant-roles` (the migration Job) uses; each component connects
//! as its own role, over TLS verified against the server's CA (`sslmode=verify-full`), with
//! a master key of its own, and its erasure ledger in another database (the ledger cluster
//! of the manifests). The whole stack books a ride that way; then the gateway's role and
//! master key are used as an attacker who took the gateway would use them.
//!
//! The throwaway server trusts every local login (`initdb --auth=trust`): what a role may
//! do is what is tested here, not its password.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::{Connection, PgConnection};

use crate::binary::{Component, wait_ready};
use crate::support::free_port;
use crate::tls::{book_a_ride, certs, command};

/// The components this test runs as processes (`samskab run <component>`).
const COMPONENTS: [&str; 4] = ["carehome", "volunteer", "booking", "gateway"];

/// Every component with a role of its own: those run here, notify (deployed on its own,
/// `deploy/k8s/base/notify.yaml`), and whatever `samskab migrate --grant-roles` grants to.
fn roled_components() -> Vec<&'static str> {
    let mut c: Vec<&'static str> =
        COMPONENTS.iter().chain(samskab::ops::COMPONENTS.iter()).copied().chain(["notify"]).collect();
    c.sort();
    c.dedup();
    c
}

/// The roles the manifests declare (CloudNativePG managed roles), by component.
fn manifest_roles() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s/base/postgres-cluster.yaml");
    let cluster: serde_json::Value = serde_norway::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let roles = cluster["spec"]["managed"]["roles"].as_array().expect("managed roles in the cluster manifest");
    let mut names: Vec<String> = roles.iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}

struct Server {
    port: u16,
    ca: PathBuf,
    admin: String,
}

impl Server {
    /// The throwaway server (`scripts/test`), with its TLS CA; `None` outside CI without one.
    fn get() -> Option<Server> {
        let admin = testkit::pg_server_url()?;
        let ca = std::env::var("SAMSKAB_TEST_PG_CA")
            .expect("SAMSKAB_TEST_PG_CA: the test server's TLS CA (scripts/pg-throwaway sets it)");
        let port = admin.rsplit_once(':').unwrap().1.split('/').next().unwrap().parse().unwrap();
        Some(Server { port, ca: ca.into(), admin })
    }

    /// A URL for `role` in `db`, over TLS checked against `ca` for the name `host`.
    fn url(&self, role: &str, db: &str, host: &str, ca: &Path, query: &str) -> String {
        format!("postgres://{role}@{host}:{}/{db}?{query}sslmode=verify-full&sslrootcert={}", self.port, ca.display())
    }

    fn tls(&self, role: &str, db: &str, query: &str) -> String {
        self.url(role, db, "localhost", &self.ca, query)
    }
}

async fn exec(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(conn).await.map(|_| ())
}

/// The SQLSTATE of a refusal (42501: insufficient privilege).
async fn refused(conn: &mut PgConnection, sql: &str) -> String {
    match exec(conn, sql).await {
        Ok(()) => panic!("allowed: {sql}"),
        Err(sqlx::Error::Database(db)) => db.code().unwrap_or_default().into_owned(),
        Err(e) => panic!("{sql}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_component_runs_as_its_own_role_and_may_touch_nothing_else() {
    let Some(pg) = Server::get() else { return };
    let roles = manifest_roles();
    let expected: Vec<String> = {
        let mut r: Vec<String> = roled_components().iter().map(|c| samskab::ops::component_role(c)).collect();
        r.sort();
        r
    };
    assert_eq!(roles, expected, "the manifests' roles are the ones `samskab migrate --grant-roles` grants to");

    // As CloudNativePG sets it up: the component roles, and each cluster's database owned
    // by an owner role (here two databases of one server stand for the two clusters).
    let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let (owner, db, ledger_owner, ledger_db) =
        (format!("own_{tag}"), format!("sk_{tag}"), format!("lown_{tag}"), format!("ledger_{tag}"));
    let mut admin = PgConnection::connect(&pg.admin).await.unwrap();
    for role in &roles {
        exec(
            &mut admin,
            &format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN \
                 CREATE ROLE {role} LOGIN NOINHERIT; END IF; END $$"
            ),
        )
        .await
        .unwrap();
    }
    for (o, d) in [(&owner, &db), (&ledger_owner, &ledger_db)] {
        exec(&mut admin, &format!("CREATE ROLE {o} LOGIN")).await.unwrap();
        exec(&mut admin, &format!("CREATE DATABASE {d} OWNER {o}")).await.unwrap();
    }

    let dir: PathBuf = tempfile::tempdir().unwrap().keep();
    let certs = certs(&dir);
    let ports: Vec<u16> = COMPONENTS.iter().map(|_| free_port()).collect();
    let port = |c: &str| ports[COMPONENTS.iter().position(|x| *x == c).unwrap()];
    let master: Vec<keystore::MasterKey> = COMPONENTS.iter().map(|_| keystore::MasterKey::generate()).collect();
    let key = |c: &str| master[COMPONENTS.iter().position(|x| *x == c).unwrap()].clone();
    let grpc = |c: &str| format!("http://127.0.0.1:{}", port(c));
    let process = |c: &str| {
        let role = samskab::ops::component_role(c);
        let mut args = vec![
            "--database-url".to_owned(),
            pg.tls(&role, &db, &format!("schema={c}&")),
            "--listen".into(),
            format!("127.0.0.1:{}", port(c)),
        ];
        if c == "booking" || c == "gateway" {
            args.extend(["--carehome-url".into(), grpc("carehome"), "--volunteer-url".into(), grpc("volunteer")]);
        }
        if c == "gateway" {
            args.extend(["--booking-url".into(), grpc("booking")]);
        }
        let env = [
            ("SAMSKAB_MASTER_KEY", key(c).to_hex()),
            ("SAMSKAB_ERASURE_LEDGER_URL", pg.tls(&role, &ledger_db, &format!("schema=erasure_ledger_{c}&"))),
        ];
        command(&dir.join(c), &certs, c, &args, &env)
    };

    // Before the migration Job ran, a component cannot make its schema: it refuses to
    // start and says what to run.
    let out = tokio::time::timeout(Duration::from_secs(60), process("carehome").output())
        .await
        .expect("a component that may not migrate exits")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("samskab migrate"), "{stderr}");

    // The migration Job: the owner roles, over verified TLS.
    let out = std::process::Command::new(crate::support::BIN)
        .args(["migrate", "--grant-roles", "--data-dir"])
        .arg(dir.join("migrate"))
        .args(["--database-url", &pg.tls(&owner, &db, "")])
        .args(["--erasure-ledger-url", &pg.tls(&ledger_owner, &ledger_db, "schema=erasure_ledger&")])
        .output()
        .unwrap();
    assert!(out.status.success(), "samskab migrate: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("rights granted to samskab_gateway"));

    // Every component as its own role: the stack works.
    let _procs: Vec<Component> = COMPONENTS.iter().map(|c| Component(process(c).spawn().unwrap())).collect();
    wait_ready(port("gateway")).await;
    book_a_ride(&dir, port("gateway")).await;

    // The gateway's role, as an attacker holding it would use it.
    let gw = samskab::ops::component_role("gateway");
    let mut stolen = PgConnection::connect(&pg.tls(&gw, &db, "")).await.expect("the gateway's own role connects");
    exec(&mut stolen, "SELECT count(*) FROM gateway.eventlog_events").await.expect("its own log");
    for sql in [
        // another component's log, read models and keys
        "SELECT * FROM carehome.eventlog_events",
        "SELECT * FROM carehome.keystore_keys",
        "SELECT * FROM carehome.carehome_residents",
        "SELECT * FROM booking.eventlog_events",
        "SELECT * FROM volunteer.keystore_keys",
        "INSERT INTO booking.eventlog_streams VALUES ('x', 1)",
        // its own history is append-only; its schema's shape is the owner's
        "UPDATE gateway.eventlog_events SET event_type = 'Forged'",
        "DELETE FROM gateway.eventlog_events",
        "TRUNCATE gateway.eventlog_events",
        "DELETE FROM gateway.gateway_migrations",
        "CREATE TABLE gateway.loot (x text)",
        "DROP TABLE gateway.keystore_keys",
        "CREATE SCHEMA loot",
        "CREATE TABLE public.loot (x text)",
    ] {
        assert_eq!(refused(&mut stolen, sql).await, "42501", "{sql}");
    }
    // Its erasure ledger is its own: the others' cannot be read or forged.
    let mut ledger = PgConnection::connect(&pg.tls(&gw, &ledger_db, "")).await.unwrap();
    exec(&mut ledger, "SELECT count(*) FROM erasure_ledger_gateway.eventlog_events").await.expect("its own ledger");
    for sql in [
        "SELECT * FROM erasure_ledger_carehome.eventlog_events",
        "INSERT INTO erasure_ledger_volunteer.eventlog_streams VALUES ('erased-x', 1)",
        "DELETE FROM erasure_ledger_gateway.eventlog_events",
    ] {
        assert_eq!(refused(&mut ledger, sql).await, "42501", "{sql}");
    }

    // TLS to PostgreSQL is verified: another CA, or a name the server's certificate does
    // not carry, is refused before any credential is sent.
    let other_ca = dir.join("other-ca.pem");
    std::fs::write(&other_ca, servicekit::tls::DevCa::generate().unwrap().cert_pem()).unwrap();
    assert!(PgConnection::connect(&pg.url(&gw, &db, "localhost", &other_ca, "")).await.is_err(), "a foreign CA");
    assert!(PgConnection::connect(&pg.url(&gw, &db, "127.0.0.1", &pg.ca, "")).await.is_err(), "a wrong name");

    // The gateway's master key opens none of the care-home service's keys, even if the
    // stored fingerprint is forged to name it; the care-home key does (the control).
    let carehome_store = eventlog::EventStore::connect(&pg.tls(&owner, &db, "schema=carehome&")).await.unwrap();
    let subjects = carehome_store.fetch_texts("SELECT subject FROM keystore_keys", &[]).await.unwrap();
    let subject = subjects.first().expect("the resident's key").clone();
    let not_sealed = domain::types::Sealed("not a sealed value".into());
    let as_gateway = keystore::KeyStore::connect(&carehome_store, key("gateway")).await.unwrap();
    let e = as_gateway.unseal(&subject, "name", &not_sealed).await.unwrap_err();
    assert!(matches!(e, keystore::Error::WrongMasterKey(_)), "{e:?}");
    let mut owner_conn = PgConnection::connect(&pg.tls(&owner, &db, "")).await.unwrap();
    let forged = format!(
        "UPDATE carehome.keystore_keys SET master_key_id = '{}' WHERE subject = '{subject}'",
        key("gateway").id()
    );
    exec(&mut owner_conn, &forged).await.unwrap();
    let e = as_gateway.unseal(&subject, "name", &not_sealed).await.unwrap_err();
    assert!(matches!(&e, keystore::Error::Corrupt { reason, .. } if reason.contains("authentication")), "{e:?}");
    let restore = format!(
        "UPDATE carehome.keystore_keys SET master_key_id = '{}' WHERE subject = '{subject}'",
        key("carehome").id()
    );
    exec(&mut owner_conn, &restore).await.unwrap();
    let as_carehome = keystore::KeyStore::connect(&carehome_store, key("carehome")).await.unwrap();
    let e = as_carehome.unseal(&subject, "name", &not_sealed).await.unwrap_err();
    assert!(matches!(&e, keystore::Error::Corrupt { reason, .. } if reason.contains("not a sealed")), "{e:?}");
    carehome_store.close().await;

    drop(_procs);
    for d in [&db, &ledger_db] {
        let _ = exec(&mut admin, &format!("DROP DATABASE IF EXISTS {d} WITH (FORCE)")).await;
    }
    for o in [&owner, &ledger_owner] {
        let _ = exec(&mut admin, &format!("DROP ROLE IF EXISTS {o}")).await;
    }
}
