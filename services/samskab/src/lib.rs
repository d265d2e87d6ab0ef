//! Samskab in one process: the care-home, volunteer and booking services on loopback gRPC
//! ports, each with its own database, and the gateway on the public address. The code
//! path is the one each service takes when deployed on its own.

pub mod demo;
pub mod ops;

use std::net::SocketAddr;
use std::path::PathBuf;

use eventlog::EventStore;
use servicekit::bootstrap::KeyConfig;
use servicekit::server::Spawned;

/// Errors of the all-in-one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A store failed.
    #[error(transparent)]
    Store(#[from] eventlog::Error),
    /// The key store failed.
    #[error(transparent)]
    Keys(#[from] keystore::Error),
    /// Networking failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A service address is malformed.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    /// A service failed to start.
    #[error("{0}")]
    Start(String),
}

/// Where the all-in-one keeps its data and listens.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeConfig {
    /// Address of the REST API.
    #[arg(long, env = "SAMSKAB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Use PostgreSQL instead of SQLite files: each service in its own schema of this database.
    #[arg(long = "database-url", env = "SAMSKAB_DATABASE_URL")]
    pub database_url: Option<String>,
    /// HTTP tuning.
    #[command(flatten)]
    pub http: gateway::HttpConfig,
    /// Data directory (SQLite files, master key, JWT secret, erasure ledger).
    #[command(flatten)]
    pub keys: KeyConfig,
    /// E-mail notices (SMTP).
    #[command(flatten)]
    pub mail: notify::mail::MailConfig,
    /// SMS notices (an HTTP provider).
    #[command(flatten)]
    pub sms: notify::sms::SmsConfig,
    /// Web Push notices.
    #[command(flatten)]
    pub push: notify::push::PushConfig,
}

impl ServeConfig {
    /// The data directory.
    pub fn data_dir(&self) -> &PathBuf {
        &self.keys.data_dir
    }

    /// The database URL of one component: a SQLite file in the data directory, or a schema
    /// of its own in PostgreSQL (`<schema>_<component>` when the URL names a `schema=`).
    pub fn url(&self, component: &str) -> String {
        match &self.database_url {
            Some(pg) if pg.starts_with("postgres") => with_component_schema(pg, component, None),
            _ => format!("sqlite://{}", self.data_dir().join(format!("{component}.db")).display()),
        }
    }
}

/// A PostgreSQL URL with `schema=<prefix>_<component>` when it names a `schema=<prefix>`,
/// else with `default_prefix`, else `schema=<component>`.
fn with_component_schema(pg: &str, component: &str, default_prefix: Option<&str>) -> String {
    let (base, query) = pg.split_once('?').unwrap_or((pg, ""));
    let mut prefix = None;
    let mut rest: Vec<&str> = Vec::new();
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        match kv.strip_prefix("schema=") {
            Some(p) => prefix = Some(p),
            None => rest.push(kv),
        }
    }
    let schema = prefix.or(default_prefix).map_or_else(|| component.to_owned(), |p| format!("{p}_{component}"));
    rest.push("");
    let rest = rest.join("&");
    format!("{base}?{rest}schema={schema}")
}

/// The running system.
pub struct Running {
    /// Where the REST API listens.
    pub addr: SocketAddr,
    /// The gateway's state (for in-process use).
    pub gateway: gateway::AppState,
    services: Vec<Spawned>,
    http: tokio::task::JoinHandle<()>,
    stop_http: tokio::sync::oneshot::Sender<()>,
}

impl Running {
    /// Drains the gateway, then stops the services.
    pub async fn stop(self) {
        // Event streams and the webhook dispatcher end first, so that draining can finish.
        self.gateway.stop.trigger();
        let _ = self.stop_http.send(());
        let _ = self.http.await;
        for s in self.services.into_iter().rev() {
            s.stop().await;
        }
    }
}

/// Makes the data directory 0700 and every file in it 0600, also when it existed with wider
/// modes (it holds the SQLite databases, the keys and `demo.env`).
pub fn secure_data_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let tighten = |path: &std::path::Path, mode: u32| -> std::io::Result<()> {
            let now = std::fs::metadata(path)?.permissions().mode() & 0o777;
            if now & !mode != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
                tracing::warn!(path = %path.display(), from = format!("{now:o}"), to = format!("{mode:o}"), "tightened permissions");
            }
            Ok(())
        };
        tighten(dir, 0o700)?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                tighten(&entry.path(), 0o600)?;
            }
        }
    }
    Ok(())
}

/// A part's store and key store. Its master key is made on first start, but never while
/// its database holds keys wrapped by one (`servicekit::bootstrap::key_store`: a lost key
/// file is restored, never replaced).
async fn open(cfg: &ServeConfig, component: &str) -> Result<(EventStore, keystore::KeyStore), Error> {
    let store = EventStore::connect(&cfg.url(component)).await?;
    let keys = servicekit::bootstrap::key_store(&store, &cfg.key_config(component, true)).await?;
    Ok((store, keys))
}

impl ServeConfig {
    /// The directory of the embedded default's master keys (one per component) and its
    /// erasure ledger: beside the data directory, `<data dir>.keys`, so that a backup of the
    /// databases never holds the keys that open them (`docs/privacy.md`).
    pub fn keys_dir(&self) -> PathBuf {
        let dir = std::path::absolute(self.data_dir()).unwrap_or_else(|_| self.data_dir().clone());
        let name = dir.file_name().map_or_else(|| "samskab-data".into(), |n| n.to_string_lossy().into_owned());
        dir.with_file_name(format!("{name}.keys"))
    }

    /// The master key file of one component in the key directory.
    pub fn key_file(&self, component: &str) -> PathBuf {
        self.keys_dir().join(format!("master-{component}.key"))
    }

    /// How `component` of the embedded default finds its master key and the ledger.
    pub fn key_config(&self, component: &str, generate: bool) -> servicekit::bootstrap::KeyConfig {
        servicekit::bootstrap::KeyConfig {
            generate,
            key_file: Some(self.key_file(component)),
            erasure_ledger_url: Some(self.ledger_url(component)),
            ..self.keys.clone()
        }
    }

    /// The erasure ledger of `component`: the one SQLite file in the key directory, or in
    /// PostgreSQL (`--erasure-ledger-url`) a schema of its own, named as
    /// [`ServeConfig::url`] names the components' (`erasure_ledger_<component>`, or
    /// `<prefix>_<component>` for `?schema=<prefix>`), so that each role may write only its
    /// own erasures.
    pub fn ledger_url(&self, component: &str) -> String {
        match &self.keys.erasure_ledger_url {
            Some(pg) if pg.starts_with("postgres") => with_component_schema(pg, component, Some("erasure_ledger")),
            Some(other) => other.clone(),
            None => format!("sqlite://{}", self.keys_dir().join(keystore::LEDGER_FILE).display()),
        }
    }
}

/// Moves the keys of a data directory written before the key directory existed: the one
/// master key becomes every component's (`samskab rotate-master-key` then gives each its
/// own), and the erasure ledger moves too; logged.
pub(crate) fn move_keys_apart(cfg: &ServeConfig) -> Result<(), Error> {
    let keys = cfg.keys_dir();
    let mut dirs = std::fs::DirBuilder::new();
    dirs.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        dirs.mode(0o700);
    }
    dirs.create(&keys)?;
    secure_data_dir(&keys)?;
    let old = cfg.data_dir().join(keystore::MASTER_KEY_FILE);
    if old.exists() {
        let text = std::fs::read_to_string(&old)?;
        for component in ops::COMPONENTS {
            let file = cfg.key_file(component);
            if !file.exists() {
                ops::write_private(&file, &text)?;
            }
        }
        std::fs::remove_file(&old)?;
        tracing::warn!(from = %old.display(), to = %keys.display(), "moved the master key out of the data directory, one copy per component; `samskab rotate-master-key` gives each its own");
    }
    let ledger = cfg.data_dir().join(keystore::LEDGER_FILE);
    if cfg.keys.erasure_ledger_url.is_none() && ledger.exists() && !keys.join(keystore::LEDGER_FILE).exists() {
        for suffix in ["", "-wal", "-shm"] {
            let from = cfg.data_dir().join(format!("{}{suffix}", keystore::LEDGER_FILE));
            if from.exists() {
                std::fs::rename(&from, keys.join(format!("{}{suffix}", keystore::LEDGER_FILE)))?;
            }
        }
        let _ = std::fs::remove_file(cfg.data_dir().join(format!("{}.migrate-lock", keystore::LEDGER_FILE)));
        tracing::warn!(from = %ledger.display(), to = %keys.display(), "moved the erasure ledger out of the data directory");
    }
    Ok(())
}

/// Starts the three services inside this process (reachable by no other process: no TCP
/// port, no socket file; see `servicekit::inproc`) and the gateway on `cfg.listen`.
pub async fn start(cfg: &ServeConfig) -> Result<Running, Error> {
    use servicekit::inproc::url_for;
    use servicekit::server::spawn_in_process;
    secure_data_dir(cfg.data_dir())?;
    move_keys_apart(cfg)?;
    let (store, keys) = open(cfg, "carehome").await?;
    let ch = carehome::CareHomeServer::start(store, keys).await.map_err(|e| Error::Start(e.to_string()))?;
    let carehome = spawn_in_process("carehome", ch.routes(), carehome::SERVICE_NAMES);
    let (store, keys) = open(cfg, "volunteer").await?;
    let vol = volunteer::VolunteerServer::start(store, keys).await.map_err(|e| Error::Start(e.to_string()))?;
    let volunteer = spawn_in_process("volunteer", vol.routes(), volunteer::SERVICE_NAMES);
    let (store, keys) = open(cfg, "booking").await?;
    let peers = booking::Peers {
        carehome_url: url_for(&carehome.url(), "booking"),
        volunteer_url: url_for(&volunteer.url(), "booking"),
        tls: Default::default(),
    };
    let b = booking::BookingServer::start(store, keys, peers).await.map_err(|e| Error::Start(e.to_string()))?;
    let booking = spawn_in_process("booking", b.routes(), booking::SERVICE_NAMES);
    // Notify starts before the gateway (and before `--demo` seeds), so it sees every event
    // of the demo as it happens.
    let (store, keys) = open(cfg, "notify").await?;
    let peers = notify::Peers {
        carehome_url: url_for(&carehome.url(), "notify"),
        booking_url: url_for(&booking.url(), "notify"),
        volunteer_url: url_for(&volunteer.url(), "notify"),
        tls: Default::default(),
    };
    let outbound =
        notify::Outbound::from_config(&cfg.mail, &cfg.sms, &cfg.push).map_err(|e| Error::Start(e.to_string()))?;
    let n = notify::NotifyServer::start_with(store, keys, peers, outbound)
        .await
        .map_err(|e| Error::Start(e.to_string()))?;
    let notify = spawn_in_process("notify", n.routes(), notify::SERVICE_NAMES);

    let (store, keys) = open(cfg, "gateway").await?;
    let tokens = gateway::Keys::from_env_or_data_dir(cfg.data_dir()).map_err(Error::Start)?;
    let urls = gateway::ServiceUrls {
        booking: url_for(&booking.url(), "gateway"),
        carehome: url_for(&carehome.url(), "gateway"),
        volunteer: url_for(&volunteer.url(), "gateway"),
        notify: Some(url_for(&notify.url(), "gateway")),
    };
    let state = gateway::state(store, keys, tokens, gateway::Clients::connect(&urls)?, &cfg.http).await?;
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    let (stop_http, stopped) = tokio::sync::oneshot::channel::<()>();
    let (served, http_cfg) = (state.clone(), cfg.http.clone());
    let http = tokio::spawn(async move {
        let stopped = async move {
            let _ = stopped.await;
        };
        if let Err(e) = gateway::serve_http(listener, served, &http_cfg, stopped).await {
            tracing::error!(error = %e, "the REST API stopped");
        }
    });
    // Again, for the files the databases made on opening (SQLite's -wal and -shm).
    secure_data_dir(cfg.data_dir())?;
    secure_data_dir(&cfg.keys_dir())?;
    tracing::info!(%addr, "Samskab is serving");
    servicekit::clock::warn_if_movable();
    Ok(Running { addr, gateway: state, services: vec![carehome, volunteer, booking, notify], http, stop_http })
}

/// Serves until `shutdown`, then drains and stops.
pub async fn serve(
    cfg: &ServeConfig,
    demo: bool,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let running = start(cfg).await?;
    if demo {
        demo::seed_once(cfg, &running).await?;
    }
    shutdown.await;
    tracing::info!("stopping");
    running.stop().await;
    Ok(())
}
