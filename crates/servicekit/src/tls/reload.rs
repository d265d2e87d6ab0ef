//! Certificates read from files and read again when the files change: cert-manager renews
//! a component's certificate in place (the mounted Secret's files are swapped), and a CA
//! rotation adds the new CA beside the old one in `ca.pem`. Every new connection, served or
//! made, uses what the files hold now; open connections keep theirs. A file caught half
//! written, or a set that does not fit together, is logged and the previous set kept: a
//! renewal never takes a component down.
//!
//! The server side accepts TCP connections and does the TLS handshake itself (tonic's
//! built-in TLS reads its certificate once); the client side is a connector for
//! [`tonic::transport::Endpoint::connect_with_connector_lazy`]. Both use rustls with the
//! ring provider.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Pem;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The files of one component's identity and CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    /// Its certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA certificates the other components' certificates must be of (PEM; several
    /// during a CA rotation).
    pub ca: PathBuf,
}

struct Loaded {
    /// What the files held (to notice a change).
    source: (String, String, String),
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

/// A component's TLS configuration, kept current with its files.
pub struct Reloading {
    files: Option<Files>,
    loaded: RwLock<Loaded>,
}

impl std::fmt::Debug for Reloading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading").field("files", &self.files).finish_non_exhaustive()
    }
}

fn build(cert: &str, key: &str, ca: &str) -> Result<(ServerConfig, ClientConfig), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate: {e}"))?;
    if chain.is_empty() {
        return Err("certificate: no certificate in the file".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| format!("private key: {e}"))?;
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(c.map_err(|e| format!("CA: {e}"))?).map_err(|e| format!("CA: {e}"))?;
    }
    if roots.is_empty() {
        return Err("CA: no certificate in the file".into());
    }
    let roots = Arc::new(roots);
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| format!("CA: {e}"))?;
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| format!("certificate and key: {e}"))?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("certificate and key: {e}"))?;
    client.alpn_protocols = vec![b"h2".to_vec()];
    Ok((server, client))
}

fn read(files: &Files) -> Result<(String, String, String), String> {
    let read = |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    Ok((read(&files.cert)?, read(&files.key)?, read(&files.ca)?))
}

impl Reloading {
    /// Reads `files` (an error when they do not make a usable set) and, inside a tokio
    /// runtime, reads them again every `every` for as long as the value lives.
    pub fn watch(files: Files, every: Duration) -> Result<Arc<Self>, String> {
        let source = read(&files)?;
        let (server, client) = build(&source.0, &source.1, &source.2)?;
        let loaded = Loaded { source, server: Arc::new(server), client: Arc::new(client) };
        let this = Arc::new(Reloading { files: Some(files), loaded: RwLock::new(loaded) });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&this);
            runtime.spawn(watch(weak, every));
        }
        Ok(this)
    }

    /// A fixed identity and CA (tests; nothing to watch).
    pub fn fixed(identity: &Pem, ca: &str) -> Result<Arc<Self>, String> {
        let (server, client) = build(&identity.cert, &identity.key, ca)?;
        let source = (identity.cert.clone(), identity.key.clone(), ca.to_owned());
        let loaded = Loaded { source, server: Arc::new(server), client: Arc::new(client) };
        Ok(Arc::new(Reloading { files: None, loaded: RwLock::new(loaded) }))
    }

    /// The server configuration new connections get.
    pub fn server(&self) -> Arc<ServerConfig> {
        self.loaded.read().expect("not poisoned").server.clone()
    }

    /// The client configuration new connections get.
    pub fn client(&self) -> Arc<ClientConfig> {
        self.loaded.read().expect("not poisoned").client.clone()
    }

    /// Reads the files again; `Ok(true)` when they changed and the new set is in use.
    pub fn reload(&self) -> Result<bool, String> {
        let Some(files) = &self.files else { return Ok(false) };
        let source = read(files)?;
        if self.loaded.read().expect("not poisoned").source == source {
            return Ok(false);
        }
        let (server, client) = build(&source.0, &source.1, &source.2)?;
        *self.loaded.write().expect("not poisoned") =
            Loaded { source, server: Arc::new(server), client: Arc::new(client) };
        Ok(true)
    }
}

async fn watch(this: Weak<Reloading>, every: Duration) {
    let mut failing = false;
    loop {
        tokio::time::sleep(every).await;
        let Some(this) = this.upgrade() else { return };
        match this.reload() {
            Ok(true) => {
                failing = false;
                tracing::info!(files = ?this.files, "TLS certificates changed on disk: new connections use them");
            }
            Ok(false) => failing = false,
            // Once per failure, not every few seconds while it lasts.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "the TLS files changed into a set that does not work: keeping the previous one");
            }
            Err(_) => {}
        }
    }
}

/// The TLS side of `incoming`: each accepted connection's handshake runs on its own task
/// (a slow or silent peer holds up no one), with the server configuration of that moment;
/// connections whose handshake fails (no certificate, another CA) are dropped.
pub fn accept<IO>(
    incoming: impl Stream<Item = std::io::Result<IO>> + Send + 'static,
    tls: Arc<Reloading>,
) -> impl Stream<Item = std::io::Result<tokio_rustls::server::TlsStream<IO>>>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let mut incoming = std::pin::pin!(incoming);
        let mut handshakes = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                next = incoming.next() => match next {
                    Some(Ok(io)) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server());
                        handshakes.spawn(tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)));
                    }
                    Some(Err(e)) => tracing::debug!(error = %e, "accepting a connection failed"),
                    None => return,
                },
                Some(done) = handshakes.join_next(), if !handshakes.is_empty() => match done {
                    Ok(Ok(Ok(stream))) => {
                        if tx.send(Ok(stream)).await.is_err() {
                            return;
                        }
                    }
                    Ok(Ok(Err(e))) => tracing::debug!(error = %e, "a TLS handshake failed; connection dropped"),
                    Ok(Err(_)) => tracing::debug!("a TLS handshake timed out; connection dropped"),
                    Err(e) => tracing::debug!(error = %e, "a TLS handshake task failed"),
                },
                _ = tx.closed() => return,
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Connects to a component over TLS with the client configuration of that moment,
/// verifying that the server's certificate is for `server` (its DNS name), whatever the
/// address.
#[derive(Clone)]
pub struct Connector {
    tls: Arc<Reloading>,
    server: ServerName<'static>,
}

impl Connector {
    /// A connector to `server` (a component's DNS name, see [`super::component_name`]).
    pub fn new(tls: Arc<Reloading>, server: &str) -> Result<Self, String> {
        let server = ServerName::try_from(server.to_owned()).map_err(|e| format!("{server}: {e}"))?;
        Ok(Connector { tls, server })
    }
}

type Io = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<http::Uri> for Connector {
    type Response = Io;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Io, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let (config, server) = (self.tls.client(), self.server.clone());
        Box::pin(async move {
            let host = uri.host().ok_or("a URL without a host")?.trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().ok_or("a URL without a port")?;
            let tcp = tokio::net::TcpStream::connect((host, port)).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(config).connect(server, tcp).await?;
            Ok(hyper_util::rt::TokioIo::new(tls))
        })
    }
}
