//! Mutual TLS between components (issue 15, a first step): a development CA that issues
//! one certificate per component (`<component>.samskab.internal`, usable as server and as
//! client), and the tonic server and client configurations that require a certificate of
//! that CA from the other side. rustls with the ring provider (aws-lc would need cmake).

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// A certificate and its private key, PEM.
#[derive(Clone)]
pub struct Pem {
    /// The certificate.
    pub cert: String,
    /// Its private key (PKCS#8).
    pub key: String,
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pem(<certificate and key>)")
    }
}

/// The DNS name a component's certificate is for.
pub fn component_name(component: &str) -> String {
    format!("{component}.samskab.internal")
}

/// A certificate authority for development and tests.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl DevCa {
    /// A fresh CA (a new key every time).
    pub fn generate() -> Result<DevCa, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.distinguished_name.push(DnType::CommonName, "Samskab development CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        Ok(DevCa { cert_pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    /// The CA's certificate, PEM (what every component trusts).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A certificate for `component`, usable to serve and to call.
    pub fn issue(&self, component: &str) -> Result<Pem, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![component_name(component)])?;
        params.distinguished_name.push(DnType::CommonName, component);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Pem { cert: cert.pem(), key: key.serialize_pem() })
    }
}

/// The components that may hold a certificate.
pub const COMPONENTS: &[&str] = &["gateway", "booking", "carehome", "volunteer", "notify"];

/// The component a peer certificate (already verified against the CA by the handshake) is
/// for, by its DNS name; `None` for a certificate of no component.
pub fn component_of(der: &[u8]) -> Option<&'static str> {
    let der = rustls::pki_types::CertificateDer::from(der);
    let cert = webpki::EndEntityCert::try_from(&der).ok()?;
    COMPONENTS.iter().copied().find(|c| {
        let name = rustls::pki_types::ServerName::try_from(component_name(c)).expect("a DNS name");
        cert.verify_is_valid_for_subject_name(&name).is_ok()
    })
}

/// The component that called, from the request's verified client certificate.
pub fn caller<T>(req: &tonic::Request<T>) -> Option<&'static str> {
    let certs = req.peer_certs()?;
    component_of(certs.first()?.as_ref())
}

/// A server that presents `identity` and requires a client certificate of `ca`.
pub fn server_config(identity: &Pem, ca: &str) -> ServerTlsConfig {
    ServerTlsConfig::new()
        .identity(Identity::from_pem(&identity.cert, &identity.key))
        .client_ca_root(Certificate::from_pem(ca))
}

/// A client that presents `identity` and trusts only servers of `ca` named as `server`.
pub fn client_config(identity: &Pem, ca: &str, server: &str) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .identity(Identity::from_pem(&identity.cert, &identity.key))
        .domain_name(component_name(server))
}

#[cfg(test)]
mod tests;
