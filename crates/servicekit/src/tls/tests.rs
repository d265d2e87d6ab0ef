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
