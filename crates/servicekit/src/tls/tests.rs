//! Mutual TLS over a real socket: the health service behind a server that requires a
//! client certificate of the CA; a client with one gets through, a client without one, or
//! with one of another CA, does not.

use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use super::*;

async fn serve(ca: &DevCa) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (_, health) = tonic_health::server::health_reporter();
    // Only the gateway may call (a policy of one method, for the test).
    let health =
        tonic::service::interceptor::InterceptedService::new(health, |req: tonic::Request<()>| match caller(&req) {
            Some("gateway") => Ok(req),
            other => Err(tonic::Status::permission_denied(format!("{other:?} may not call this"))),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = server_config(&ca.issue("carehome").unwrap(), ca.cert_pem());
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(async move {
        Server::builder().tls_config(tls).unwrap().add_service(health).serve_with_incoming(incoming).await.unwrap();
    });
    format!("https://{addr}")
}

async fn check(url: &str, tls: ClientTlsConfig) -> Result<(), String> {
    let channel = Channel::from_shared(url.to_owned())
        .unwrap()
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    HealthClient::new(channel)
        .check(HealthCheckRequest { service: String::new() })
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn only_a_component_of_the_ca_gets_through() {
    let ca = DevCa::generate().unwrap();
    let url = serve(&ca).await;
    let gateway = ca.issue("gateway").unwrap();
    assert_eq!(check(&url, client_config(&gateway, ca.cert_pem(), "carehome")).await, Ok(()));
    // Without a client certificate.
    let anonymous = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.cert_pem()))
        .domain_name(component_name("carehome"));
    assert!(check(&url, anonymous).await.is_err(), "no client certificate");
    // With a certificate of another CA.
    let other = DevCa::generate().unwrap();
    let stranger = other.issue("gateway").unwrap();
    assert!(check(&url, client_config(&stranger, ca.cert_pem(), "carehome")).await.is_err(), "another CA");
    // Another component of the CA is who it is, and this method is not for it.
    let booking = ca.issue("booking").unwrap();
    let refused = check(&url, client_config(&booking, ca.cert_pem(), "carehome")).await.unwrap_err();
    assert!(refused.contains("booking") && refused.contains("may not call"), "{refused}");
    // Expecting another component behind the address.
    assert!(check(&url, client_config(&gateway, ca.cert_pem(), "booking")).await.is_err(), "wrong server name");
}

#[test]
fn a_certificate_names_its_component() {
    let ca = DevCa::generate().unwrap();
    let pem = ca.issue("booking").unwrap();
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(pem.cert.as_bytes())
        .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
        .unwrap();
    assert_eq!(component_of(&der), Some("booking"));
    assert_eq!(component_of(b"not a certificate"), None);
}

fn write(path: &std::path::Path, text: &str) {
    // As kubelet swaps a Secret's files: the new content appears at once.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn write_set(dir: &std::path::Path, name: &str, pem: &Pem, ca: &str) -> TlsConfig {
    let (cert, key, ca_file) =
        (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")), dir.join(format!("{name}-ca.pem")));
    write(&cert, &pem.cert);
    write(&key, &pem.key);
    write(&ca_file, ca);
    TlsConfig { cert: Some(cert), key: Some(key), ca: Some(ca_file), insecure_plaintext: false, reload_secs: 1 }
}

/// A health service behind [`reload::accept`] with the certificates of `tls`.
async fn serve_reloading(tls: &TlsConfig) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (_, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming =
        reload::accept(tokio_stream::wrappers::TcpListenerStream::new(listener), tls.reloading().unwrap().unwrap());
    tokio::spawn(async move { Server::builder().add_service(health).serve_with_incoming(incoming).await.unwrap() });
    format!("http://{addr}")
}

/// One call on a new channel (a new connection) made as `tls` says.
async fn call_via(tls: &TlsConfig, url: &str) -> Result<(), String> {
    let channel = tls.channel(url, "carehome")?;
    HealthClient::new(channel)
        .check(HealthCheckRequest { service: String::new() })
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

async fn until(what: &str, tls: &TlsConfig, url: &str, ok: bool) {
    let started = std::time::Instant::now();
    loop {
        let r = call_via(tls, url).await;
        if r.is_ok() == ok {
            return;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "{what}: still {r:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn certificates_are_read_again_when_their_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, other) = (DevCa::generate().unwrap(), DevCa::generate().unwrap());
    // The server starts with a certificate for the wrong component: a client expecting the
    // care-home service refuses it.
    let server = write_set(dir.path(), "server", &ca.issue("booking").unwrap(), ca.cert_pem());
    let client = write_set(dir.path(), "client", &ca.issue("gateway").unwrap(), ca.cert_pem());
    let url = serve_reloading(&server).await;
    assert!(call_via(&client, &url).await.is_err(), "a server certificate for another component");
    // Renewed in place (as cert-manager does): new connections get it, no restart.
    let renewed = ca.issue("carehome").unwrap();
    write(server.key.as_ref().unwrap(), &renewed.key);
    write(server.cert.as_ref().unwrap(), &renewed.cert);
    until("the server to present its renewed certificate", &client, &url, true).await;

    // The client's certificate is replaced by one of another CA: refused at the next
    // connection; then the server trusts both CAs (a CA rotation): let in again.
    let stranger = other.issue("gateway").unwrap();
    write(client.key.as_ref().unwrap(), &stranger.key);
    write(client.cert.as_ref().unwrap(), &stranger.cert);
    until("the client's new certificate of another CA to be refused", &client, &url, false).await;
    write(server.ca.as_ref().unwrap(), &format!("{}{}", ca.cert_pem(), other.cert_pem()));
    until("the server to trust the second CA", &client, &url, true).await;

    // A half-written file is not taken: the previous set stays in use.
    write(server.cert.as_ref().unwrap(), "-----BEGIN CERTIFICATE-----\ntruncat");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(call_via(&client, &url).await, Ok(()), "the previous set is kept");
}
