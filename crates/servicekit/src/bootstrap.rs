//! What every service binary does before serving: open its key store with the master key
//! and the erasure ledger, and the operator command that rotates the master key.

use std::path::PathBuf;

use eventlog::EventStore;
use keystore::{ErasureLedger, KeyStore, MasterKey};

/// Where the master key and the erasure ledger are.
#[derive(Debug, Clone, clap::Args)]
pub struct KeyConfig {
    /// Directory for the generated master key when SAMSKAB_MASTER_KEY(_FILE) is not set.
    #[arg(long = "data-dir", env = "SAMSKAB_DATA_DIR", default_value = "samskab-data")]
    pub data_dir: PathBuf,
    /// The erasure ledger (kept and backed up apart from the services' databases; see
    /// docs/privacy.md). Default: `erasure-ledger.db` in the data directory.
    #[arg(long = "erasure-ledger-url", env = "SAMSKAB_ERASURE_LEDGER_URL")]
    pub erasure_ledger_url: Option<String>,
    /// Whether keys missing from the environment and the data directory are generated
    /// there: the embedded default (`samskab serve` and its tools) only. A component run
    /// on its own refuses to start without its keys instead of making new ones silently.
    #[arg(skip)]
    pub generate: bool,
    /// The master key's file, when not `<data dir>/master.key` (the embedded default keeps
    /// one per component in its key directory).
    #[arg(skip)]
    pub key_file: Option<PathBuf>,
}

impl KeyConfig {
    /// The ledger's URL.
    pub fn ledger_url(&self) -> String {
        self.erasure_ledger_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join(keystore::LEDGER_FILE).display()))
    }
}

/// The service's key store: master key from the environment or the data directory, the
/// erasure ledger applied (a restored backup loses erased keys again) and recording.
pub async fn key_store(store: &EventStore, cfg: &KeyConfig) -> Result<KeyStore, keystore::Error> {
    // A new master key beside keys wrapped by another one would leave every person's data
    // unreadable: a lost `master.key` is an error to fix (restore it), never a reason to
    // make a new one.
    let generate = cfg.generate && !KeyStore::holds_wrapped_keys(store).await;
    let key_file = cfg.key_file.clone().unwrap_or_else(|| cfg.data_dir.join(keystore::MASTER_KEY_FILE));
    let master = MasterKey::load(Some(&key_file), generate).map_err(|e| match e {
        keystore::Error::MasterKey(m) if cfg.generate && !generate => keystore::Error::MasterKey(format!(
            "{m}; this database holds keys wrapped by a master key that is missing: restore {} from your \
             backup (a new key would leave every person's data unreadable)",
            key_file.display()
        )),
        other => other,
    })?;
    let ledger = ErasureLedger::connect(&cfg.ledger_url()).await?;
    let (keys, again) = KeyStore::connect(store, master).await?.with_ledger(ledger).await?;
    if again > 0 {
        tracing::warn!(keys = again, "keys of erased subjects came back with a restore and were erased again");
    }
    Ok(keys)
}

/// Operator commands every service binary has besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Serve (the default).
    Serve,
    /// Re-wrap every key under the current master key (SAMSKAB_MASTER_KEY, ...), reading
    /// keys wrapped by the old one from a file; run before retiring the old key.
    RotateMasterKey {
        /// File holding the old master key.
        #[arg(long = "old-key-file")]
        old_key_file: PathBuf,
    },
}

/// Runs `rotate-master-key` against a service's database; returns how many keys moved.
pub async fn rotate_master_key(
    database_url: &str,
    cfg: &KeyConfig,
    old_key_file: &std::path::Path,
) -> Result<u64, keystore::Error> {
    let store = EventStore::connect(database_url).await?;
    let old = MasterKey::read_file(old_key_file)?;
    let keys = key_store(&store, cfg).await?;
    keys.rewrap_from(&old).await
}
