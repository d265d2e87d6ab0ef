//! Components run as separate processes talk over mutual TLS with certificates from
//! `samskab certs --out DIR`: the whole stack books a ride through the gateway. An
//! attacker's process reaching the services' ports gets nothing without a certificate of
//! the CA, and with the booking certificate is refused a care-home query
//! (`PERMISSION_DENIED`), while the gateway's certificate is let in.

use std::path::{Path, PathBuf};
use std::time::Duration;

use samskab_proto::carehome::v1::{ListRequest, care_home_service_client::CareHomeServiceClient};
use serde_json::json;
use servicekit::tls::{Pem, client_config};

use crate::binary::{Component, call, wait_ready};
use crate::support::{BIN, SHARED_SECRETS, client, free_port, shared_token};

fn run(dir: &Path, certs: &Path, component: &str, args: &[String]) -> Component {
    Component(command(dir, certs, component, args, &[]).spawn().expect("samskab run starts"))
}

/// `samskab run <component> ARGS` over mutual TLS with the certificates in `certs`, the
/// shared secrets and then `env` (which may override them).
pub(crate) fn command(
    dir: &Path,
    certs: &Path,
    component: &str,
    args: &[String],
    env: &[(&str, String)],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("run")
        .arg(component)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .envs(SHARED_SECRETS)
        .env("SAMSKAB_TLS_CERT", certs.join(format!("{component}.pem")))
        .env("SAMSKAB_TLS_KEY", certs.join(format!("{component}.key")))
        .env("SAMSKAB_TLS_CA", certs.join("ca.pem"))
        .env("SAMSKAB_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    cmd
}

/// `samskab certs --out DIR/certs`.
pub(crate) fn certs(dir: &Path) -> PathBuf {
    let certs = dir.join("certs");
    let out = std::process::Command::new(BIN).args(["certs", "--out"]).arg(&certs).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    certs
}

/// Through the gateway at `gateway` (a port): a chapter, a care home with a resident, a
/// trishaw and a pilot, then a ride booked once booking has learnt of them from the
/// services' feeds. Returns the care home's id.
pub(crate) async fn book_a_ride(dir: &Path, gateway: u16) -> String {
    let admin = shared_token(dir, &["--role", "admin"]);
    let http = client(Duration::from_secs(30));
    let gw = format!("http://127.0.0.1:{gateway}");
    let post = |path: String, body: serde_json::Value| {
        let (http, url, admin) = (http.clone(), format!("{gw}{path}"), admin.clone());
        async move { call(&http, reqwest::Method::POST, &url, &admin, Some(body), None).await }
    };
    let (st, ch) = post("/v1/chapters".into(), json!({"name": "Odense", "timezone": "Europe/Copenhagen"})).await;
    assert_eq!(st, 201, "{ch}");
    let chapter = ch["chapter_id"].as_str().unwrap().to_owned();
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let (st, home) = post(
        "/v1/carehomes".into(),
        json!({"chapter_id": chapter, "name": "Egeparken", "address": "Egevej 2",
               "ride_hours": days.iter().map(|d| json!({"weekday": d, "opens": "09:00", "closes": "17:00"})).collect::<Vec<_>>(),
               "turnaround_minutes": 15, "requires_confirmation": false}),
    )
    .await;
    assert_eq!(st, 201, "{home}");
    let home = home["carehome_id"].as_str().unwrap().to_owned();
    let (st, resident) = post(
        format!("/v1/carehomes/{home}/residents"),
        json!({"display_name": "Karen Madsen", "notes": "Likes the harbour",
               "consent": {"given_by": "relative", "given_at": "2026-11-01T10:00:00Z", "scope": ["rides"]}}),
    )
    .await;
    assert_eq!(st, 201, "{resident}");
    let (st, bike) = post(format!("/v1/carehomes/{home}/bikes"), json!({"name": "Cykel 1", "seats": 2})).await;
    assert_eq!(st, 201, "{bike}");
    let (st, p) = post("/v1/pilots".into(), json!({"chapter_id": chapter, "display_name": "Pilot"})).await;
    assert_eq!(st, 201, "{p}");
    let pilot = p["pilot_id"].as_str().unwrap().to_owned();
    let (st, q) = post(
        format!("/v1/pilots/{pilot}/qualifications"),
        json!({"qualified_on": "2026-01-01", "valid_until": "2028-12-31"}),
    )
    .await;
    assert_eq!(st, 200, "{q}");
    let body = json!({"bike_id": bike["bike_id"], "pilot_id": pilot, "start": "2027-06-01T08:00:00Z",
                      "duration_minutes": 60, "resident_ids": [resident["resident_id"]]});
    testkit::eventually("booking to learn the world over TLS", Duration::from_secs(30), || async {
        let (st, v) = post("/v1/rides".into(), body.clone()).await;
        if st == 201 { Ok(v) } else { Err(format!("{st} {v}")) }
    })
    .await;
    home
}

fn pem(certs: &Path, component: &str) -> Pem {
    let read = |f: String| std::fs::read_to_string(certs.join(f)).unwrap();
    Pem { cert: read(format!("{component}.pem")), key: read(format!("{component}.key")) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn separate_processes_talk_over_mutual_tls_and_strangers_get_nothing() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir: PathBuf = tempfile::tempdir().unwrap().keep();
    let certs = certs(&dir);
    let [carehome, volunteer, booking, gateway] = [free_port(), free_port(), free_port(), free_port()];
    let sqlite = |c: &str| format!("sqlite://{}", dir.join(format!("{c}.db")).display());
    let url = |p: u16| format!("http://127.0.0.1:{p}");
    let base = |name: &str, port: u16| {
        vec!["--database-url".to_owned(), sqlite(name), "--listen".into(), format!("127.0.0.1:{port}")]
    };
    let peers = vec!["--carehome-url".to_owned(), url(carehome), "--volunteer-url".into(), url(volunteer)];
    let _procs = [
        run(&dir, &certs, "carehome", &base("carehome", carehome)),
        run(&dir, &certs, "volunteer", &base("volunteer", volunteer)),
        run(&dir, &certs, "booking", &[base("booking", booking), peers.clone()].concat()),
        run(
            &dir,
            &certs,
            "gateway",
            &[base("gateway", gateway), peers, vec!["--booking-url".into(), url(booking)]].concat(),
        ),
    ];
    wait_ready(gateway).await;

    // The stack works over TLS: booking learns of the world over its TLS feeds and books.
    let home = book_a_ride(&dir, gateway).await;

    // An attacker's process at the care-home port.
    let ca = std::fs::read_to_string(certs.join("ca.pem")).unwrap();
    let list = || ListRequest { parent_id: home.clone(), limit: 10, cursor: String::new() };
    let https = format!("https://127.0.0.1:{carehome}");
    let with = |tls| CareHomeServiceClient::new(servicekit::client::channel_tls(&https, tls).unwrap());
    let as_gateway = client_config(&pem(&certs, "gateway"), &ca, "carehome");
    with(as_gateway).list_residents(list()).await.expect("the gateway's certificate is let in");
    let as_booking = client_config(&pem(&certs, "booking"), &ca, "carehome");
    let refused = with(as_booking).list_residents(list()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let anonymous = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&ca))
        .domain_name(servicekit::tls::component_name("carehome"));
    assert!(with(anonymous).list_residents(list()).await.is_err(), "no client certificate");
    let plaintext = servicekit::client::channel(&url(carehome)).unwrap();
    assert!(CareHomeServiceClient::new(plaintext).list_residents(list()).await.is_err(), "plain text");

    // Every gRPC port: even the health service, which any component may ask, answers no one
    // without a certificate of the CA (plain text, TLS without a client certificate, one of
    // another CA), and a component's certificate gets through.
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let foreign = servicekit::tls::DevCa::generate().unwrap();
    for (name, port) in [("carehome", carehome), ("volunteer", volunteer), ("booking", booking)] {
        let https = format!("https://127.0.0.1:{port}");
        let health = |channel| async move {
            HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await.map(drop)
        };
        let plain = servicekit::client::channel(&url(port)).unwrap();
        assert!(health(plain).await.is_err(), "{name}: plain text");
        let anonymous = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&ca))
            .domain_name(servicekit::tls::component_name(name));
        assert!(
            health(servicekit::client::channel_tls(&https, anonymous).unwrap()).await.is_err(),
            "{name}: anonymous"
        );
        let stranger = client_config(&foreign.issue("gateway").unwrap(), &ca, name);
        assert!(
            health(servicekit::client::channel_tls(&https, stranger).unwrap()).await.is_err(),
            "{name}: another CA"
        );
        let gateway = client_config(&pem(&certs, "gateway"), &ca, name);
        health(servicekit::client::channel_tls(&https, gateway).unwrap())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
