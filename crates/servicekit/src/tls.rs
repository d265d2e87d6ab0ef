//! Mutual TLS between components: a development CA that issues one certificate per
//! component (`<component>.samskab.internal`, usable as server and as client;
//! `samskab certs`), the tonic server and client configurations that require a certificate
//! of that CA from the other side, the settings that read them from files
//! ([`TlsConfig`]), and the component a verified certificate names (read by
//! [`crate::policy`]). rustls with the ring provider (aws-lc would need cmake).

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

    /// A server certificate for other names (a test's SMTP relay on `localhost`).
    pub fn issue_for(&self, names: &[&str]) -> Result<Pem, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("server"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Pem { cert: cert.pem(), key: key.serialize_pem() })
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

/// Mutual TLS between components, from files (PEM): this component's certificate and key,
/// and the CA every component's certificate is of. All three or none.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsConfig {
    /// This component's certificate (PEM) for mutual TLS with the other components (its
    /// DNS name `<component>.samskab.internal`; `samskab certs --out DIR` makes a set).
    #[arg(long = "tls-cert", env = "SAMSKAB_TLS_CERT")]
    pub cert: Option<std::path::PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long = "tls-key", env = "SAMSKAB_TLS_KEY")]
    pub key: Option<std::path::PathBuf>,
    /// The CA (PEM) whose certificates the other components must present.
    #[arg(long = "tls-ca", env = "SAMSKAB_TLS_CA")]
    pub ca: Option<std::path::PathBuf>,
    /// Serve and call gRPC in plain text, without mutual TLS: any process that reaches the
    /// port may then call every method. Without it, a component with no TLS settings
    /// refuses to start.
    #[arg(long = "insecure-plaintext", env = "SAMSKAB_INSECURE_PLAINTEXT")]
    pub insecure_plaintext: bool,
    /// How often the three files are read again (a renewed certificate, a CA added for a
    /// rotation): new connections then use them, without a restart.
    #[arg(long = "tls-reload-secs", env = "SAMSKAB_TLS_RELOAD_SECS", default_value_t = 10)]
    pub reload_secs: u64,
}

/// One watcher per set of files in a process: the server and every channel of a component
/// share it.
static WATCHED: std::sync::Mutex<Vec<(reload::Files, std::sync::Weak<reload::Reloading>)>> =
    std::sync::Mutex::new(Vec::new());

impl TlsConfig {
    /// Plain text on purpose (`--insecure-plaintext`): tests, and parts of one process.
    pub fn plaintext() -> Self {
        TlsConfig { insecure_plaintext: true, ..TlsConfig::default() }
    }

    /// The identity and CA from the files, kept current with them (read again every
    /// `--tls-reload-secs`), shared by every server and channel of the process that uses
    /// the same files (read once here, not per channel); `None` as [`TlsConfig::files`].
    pub fn reloading(&self) -> Result<Option<std::sync::Arc<reload::Reloading>>, String> {
        let Some(files) = self.files()? else { return Ok(None) };
        let mut watched = WATCHED.lock().expect("not poisoned");
        watched.retain(|(_, w)| w.strong_count() > 0);
        if let Some(r) = watched.iter().find(|(f, _)| *f == files).and_then(|(_, w)| w.upgrade()) {
            return Ok(Some(r));
        }
        let every = std::time::Duration::from_secs(self.reload_secs.max(1));
        let r = reload::Reloading::watch(files.clone(), every)?;
        watched.push((files, std::sync::Arc::downgrade(&r)));
        Ok(Some(r))
    }

    /// The files of this component's identity and CA (read by [`reload::Reloading`]);
    /// `None` when none is set and `--insecure-plaintext` allows that (warned in the log),
    /// else an error.
    pub fn files(&self) -> Result<Option<reload::Files>, String> {
        match (&self.cert, &self.key, &self.ca) {
            (None, None, None) if self.insecure_plaintext => Ok(None),
            (None, None, None) => Err("no mutual TLS settings: set SAMSKAB_TLS_CERT, SAMSKAB_TLS_KEY and \
                 SAMSKAB_TLS_CA (`samskab certs --out DIR` makes a development set), or run in plain text \
                 with --insecure-plaintext (SAMSKAB_INSECURE_PLAINTEXT=true)"
                .into()),
            _ if self.insecure_plaintext => {
                Err("--insecure-plaintext and the SAMSKAB_TLS_* settings exclude each other".into())
            }
            (Some(cert), Some(key), Some(ca)) => {
                Ok(Some(reload::Files { cert: cert.clone(), key: key.clone(), ca: ca.clone() }))
            }
            _ => Err("mutual TLS needs all of SAMSKAB_TLS_CERT, SAMSKAB_TLS_KEY and SAMSKAB_TLS_CA".into()),
        }
    }

    /// A channel to `server` (a component) at `url`: over mutual TLS when configured (with
    /// the certificate the files hold at each new connection; an `http://` URL is called
    /// over TLS too: never silently in plain text), else as [`crate::client::channel`].
    pub fn channel(&self, url: &str, server: &str) -> Result<tonic::transport::Channel, String> {
        if url.starts_with(crate::inproc::SCHEME) {
            return crate::client::channel(url).map_err(|e| e.to_string());
        }
        match self.reloading()? {
            Some(tls) => crate::client::channel_via(url, reload::Connector::new(tls, &component_name(server))?)
                .map_err(|e| e.to_string()),
            _ => crate::client::channel(url).map_err(|e| e.to_string()),
        }
    }
}

/// Writes a development CA and a certificate per component into `dir` (`ca.pem`,
/// `<component>.pem`, `<component>.key`; keys 0600), for running the services one by one,
/// docker-compose and tests; production certificates come from the cluster's issuer. A
/// directory that has a `ca.pem` already is kept as it is (nothing written).
pub fn write_dev_certs(dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>, String> {
    let io = |p: &std::path::Path, e: std::io::Error| format!("{}: {e}", p.display());
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    if dir.join("ca.pem").exists() {
        // Kept: components running with these would no longer meet new ones.
        return Ok(Vec::new());
    }
    let ca = DevCa::generate().map_err(|e| e.to_string())?;
    let mut written = vec![dir.join("ca.pem")];
    std::fs::write(&written[0], ca.cert_pem()).map_err(|e| io(&written[0], e))?;
    for component in COMPONENTS {
        let pem = ca.issue(component).map_err(|e| e.to_string())?;
        let (cert, key) = (dir.join(format!("{component}.pem")), dir.join(format!("{component}.key")));
        std::fs::write(&cert, &pem.cert).map_err(|e| io(&cert, e))?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        use std::io::Write;
        opts.open(&key).and_then(|mut f| f.write_all(pem.key.as_bytes())).map_err(|e| io(&key, e))?;
        written.extend([cert, key]);
    }
    Ok(written)
}

pub mod reload;

#[cfg(test)]
mod tests;
