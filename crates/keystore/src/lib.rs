//! Crypto-shredding. Every person's (and every ride's) personal fields are sealed with that
//! subject's own 256-bit key (XChaCha20-Poly1305); the keys live in one table of the
//! service's database, outside the event log, each wrapped by the master key. Erasing a
//! subject deletes its key: every copy of its sealed fields, in events, read models and
//! backups of the log, becomes unreadable at once.
//!
//! Subjects are pseudonymous strings such as `pilot:<uuid>`, `resident:<uuid>` or
//! `ride:<uuid>`. A sealed value is bound to its subject and field (associated data), so a
//! ciphertext moved to another field or person does not decrypt.
//!
//! No unwrapped key is cached: a replica cannot keep decrypting after another replica
//! erased the key.

pub mod secret;

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use domain::types::Sealed;
use eventlog::{Arg, EventStore};
use rand::Rng;
use sha2::{Digest, Sha256};

/// Errors of the key store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The master key is missing or malformed.
    #[error("master key: {0}")]
    MasterKey(String),
    /// A sealed value is malformed or was tampered with (not: erased, which is `Ok(None)`).
    #[error("sealed value for {subject} cannot be opened: {reason}")]
    Corrupt {
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// A stored key was wrapped by another master key.
    #[error("key of {0} is wrapped by another master key")]
    WrongMasterKey(String),
    /// The subject was erased: nothing can be sealed for it any more.
    #[error("{0} has been erased")]
    Erased(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] eventlog::Error),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Reading or writing the master key file failed.
    #[error("master key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// The key that wraps every subject key. Never stored in the database.
#[derive(Clone)]
pub struct MasterKey {
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id())
    }
}

/// The environment variable holding the master key (64 hex digits or base64 of 32 bytes).
pub const MASTER_KEY_VAR: &str = "SAMSKAB_MASTER_KEY";
/// The environment variable naming a file that holds the master key.
pub const MASTER_KEY_FILE_VAR: &str = "SAMSKAB_MASTER_KEY_FILE";
/// The file name used in a data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

impl MasterKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut key = [0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut key);
        MasterKey { key }
    }

    /// Parses 64 hex digits or base64 of 32 bytes.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let bytes = hex::decode(text)
            .ok()
            .filter(|b| b.len() == KEY_LEN)
            .or_else(|| B64.decode(text).ok().filter(|b| b.len() == KEY_LEN))
            .ok_or_else(|| Error::MasterKey("expected 64 hex digits or base64 of 32 bytes".into()))?;
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(&bytes);
        Ok(MasterKey { key })
    }

    /// The key as 64 hex digits (to write to a file or a secret).
    pub fn to_hex(&self) -> String {
        hex::encode(self.key)
    }

    /// A short public fingerprint, stored beside each wrapped key so that a wrong or
    /// rotated master key is recognised instead of failing as "tampered".
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(self.key)[..8])
    }

    /// The master key from `SAMSKAB_MASTER_KEY`, else from the file named by
    /// `SAMSKAB_MASTER_KEY_FILE`, else from `<data_dir>/master.key`, generated there (mode
    /// 0600) on first start when `data_dir` is given.
    pub fn from_env_or_data_dir(data_dir: Option<&Path>) -> Result<Self, Error> {
        Self::load(data_dir.map(|d| d.join(MASTER_KEY_FILE)).as_deref(), true)
    }

    /// The master key from `SAMSKAB_MASTER_KEY`, else from the file named by
    /// `SAMSKAB_MASTER_KEY_FILE`, else from `key_file` (usually `<data dir>/master.key`);
    /// generated there (mode 0600) only when `generate` (the embedded default), else an
    /// error. The key is checked ([`secret::check`], and its bytes neither repeated nor
    /// consecutive); a variable that is set must not be empty.
    pub fn load(key_file: Option<&Path>, generate: bool) -> Result<Self, Error> {
        let refuse = |e: String| Error::MasterKey(e);
        if let Ok(text) = std::env::var(MASTER_KEY_VAR) {
            return Self::parse_checked(MASTER_KEY_VAR, &text);
        }
        if let Ok(path) = std::env::var(MASTER_KEY_FILE_VAR) {
            if path.trim().is_empty() {
                return Err(refuse(format!("{MASTER_KEY_FILE_VAR} is set but empty")));
            }
            let text =
                std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone().into(), source })?;
            return Self::parse_checked(&format!("the master key in {path}"), &text);
        }
        let path = key_file.ok_or_else(|| {
            refuse(format!("set {MASTER_KEY_VAR} or {MASTER_KEY_FILE_VAR} (no data directory to keep one in)"))
        })?;
        let path = path.to_path_buf();
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
            return Self::parse_checked(&format!("the master key in {}", path.display()), &text);
        }
        if !generate {
            return Err(refuse(format!(
                "no master key: set {MASTER_KEY_VAR} or {MASTER_KEY_FILE_VAR}, or put one in {} \
                 (`samskab keys --out DIR` makes one); only `samskab serve` generates its own",
                path.display()
            )));
        }
        let key = Self::generate();
        write_private(&path, &key.to_hex())?;
        tracing::info!(path = %path.display(), "generated a master key; back it up apart from the database");
        Ok(key)
    }

    /// Parses a key given to this binary, refusing published, empty or low-entropy ones.
    pub fn parse_checked(what: &str, text: &str) -> Result<Self, Error> {
        secret::check(what, text).map_err(Error::MasterKey)?;
        let key = Self::parse(text)
            .map_err(|_| Error::MasterKey(format!("{what} must be 64 hex digits or base64 of exactly 32 bytes")))?;
        if secret::low_entropy(&key.key) {
            return Err(Error::MasterKey(format!("{what} is one byte repeated or a run of consecutive bytes")));
        }
        Ok(key)
    }

    /// Reads a key file (unchecked: also an old key being rotated away from).
    pub fn read_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.into(), source })?;
        Self::parse(&text)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new_from_slice(&self.key).expect("32-byte key")
    }
}

/// Creates `path` with mode 0600 and writes `text`, refusing to overwrite.
fn write_private(path: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write;
    let io = |source| Error::Io { path: path.into(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

fn seal_bytes(cipher: &XChaCha20Poly1305, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let nonce_arr = XNonce::try_from(&nonce[..]).expect("24-byte nonce");
    let ct = cipher.encrypt(&nonce_arr, Payload { msg: plaintext, aad }).expect("in-memory encryption cannot fail");
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn open_bytes(cipher: &XChaCha20Poly1305, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN + 16 {
        return None;
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce = XNonce::try_from(nonce).ok()?;
    cipher.decrypt(&nonce, Payload { msg: ct, aad }).ok()
}

fn wrap_aad(subject: &str) -> Vec<u8> {
    format!("samskab-key\0{subject}").into_bytes()
}

fn field_aad(subject: &str, field: &str) -> Vec<u8> {
    format!("samskab-field\0{subject}\0{field}").into_bytes()
}

/// The keys of one service's subjects, in that service's database.
#[derive(Clone)]
pub struct KeyStore {
    store: EventStore,
    master: MasterKey,
    ledger: Option<ErasureLedger>,
}

/// The erasure ledger: every erased subject, in a database of its own (an event log of
/// `SubjectErased` events) that is backed up apart from the services' databases and never
/// rolled back. After a service's database is restored from a backup taken before an
/// erasure, [`KeyStore::with_ledger`] erases that subject's key again before the service
/// serves, so a restore never brings an erased person back. It holds pseudonymous subject
/// ids only.
#[derive(Clone)]
pub struct ErasureLedger {
    log: EventStore,
}

impl std::fmt::Debug for ErasureLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ErasureLedger")
    }
}

/// The default place of the ledger for the embedded set-up.
pub const LEDGER_FILE: &str = "erasure-ledger.db";

impl ErasureLedger {
    /// Opens the ledger at `url` (`sqlite://...` or `postgres://...`).
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Ok(ErasureLedger { log: EventStore::connect(url).await? })
    }

    /// Records that `subject` was erased; recording it twice is harmless.
    pub async fn record(&self, subject: &str) -> Result<(), Error> {
        let digest = Sha256::digest(format!("samskab-erasure\0{subject}").as_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        id[6] = (id[6] & 0x0f) | 0x70;
        id[8] = (id[8] & 0x3f) | 0x80;
        let event = eventlog::NewEvent::with_id(
            uuid::Uuid::from_bytes(id),
            "SubjectErased",
            &serde_json::json!({ "subject": subject }),
        )?
        .occurred_at(chrono::DateTime::UNIX_EPOCH);
        let stream = format!("erased-{subject}");
        self.log.append_to(eventlog::StreamAppend::new(stream, eventlog::ExpectedVersion::Any, vec![event])).await?;
        Ok(())
    }

    /// Every subject ever erased.
    pub async fn subjects(&self) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let mut cursor = eventlog::Cursor::START;
        loop {
            let page = self.log.read_all(cursor, &eventlog::Filter::category("erased-"), 1000).await?;
            if page.events.is_empty() {
                return Ok(out);
            }
            for e in &page.events {
                if let Some(s) = e.stream_id.strip_prefix("erased-") {
                    out.push(s.to_owned());
                }
            }
            cursor = page.next;
        }
    }
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore").field("master", &self.master).finish()
    }
}

impl KeyStore {
    /// Opens the key store in the event store's database (creating its table).
    pub async fn connect(store: &EventStore, master: MasterKey) -> Result<Self, Error> {
        Self::migrate(store).await?;
        Ok(KeyStore { store: store.clone(), master, ledger: None })
    }

    /// Creates the key store's table in `store`'s database unless it is there (a role that
    /// may not create tables opens a schema the owner migrated; `samskab migrate`).
    pub async fn migrate(store: &EventStore) -> Result<(), Error> {
        let postgres = store.backend() == eventlog::Backend::Postgres;
        if postgres
            && !store
                .fetch_texts("SELECT 'present' WHERE to_regclass('keystore_keys') IS NOT NULL", &[])
                .await?
                .is_empty()
        {
            return Ok(());
        }
        store
            .transaction(move |tx| {
                Box::pin(async move {
                    // Two processes starting at once (two gateway replicas) would both pass
                    // `IF NOT EXISTS` and one fail on the catalogue's unique index: they
                    // take turns.
                    if postgres {
                        tx.execute("SELECT pg_advisory_xact_lock(hashtext('keystore/create-table'))", &[]).await?;
                    }
                    // Migration 1 of the key store (portable SQL; later changes get their own).
                    tx.execute(
                        "CREATE TABLE IF NOT EXISTS keystore_keys (\
                           subject TEXT PRIMARY KEY, \
                           wrapped TEXT NOT NULL, \
                           master_key_id TEXT NOT NULL, \
                           created_at TEXT NOT NULL, \
                           erased_at TEXT)",
                        &[],
                    )
                    .await?;
                    Ok(())
                })
            })
            .await?;
        Ok(())
    }

    /// Whether `store` holds keys wrapped by some master key (false before the key store's
    /// table exists).
    pub async fn holds_wrapped_keys(store: &EventStore) -> bool {
        store.fetch_texts("SELECT subject FROM keystore_keys LIMIT 1", &[]).await.is_ok_and(|rows| !rows.is_empty())
    }

    /// Records every future erasure in `ledger` too, and first applies the ledger: any
    /// subject erased there that still has a key here (a restored backup) loses it again.
    /// Returns the key store and how many keys it erased again.
    pub async fn with_ledger(mut self, ledger: ErasureLedger) -> Result<(Self, usize), Error> {
        let mut again = 0;
        for subject in ledger.subjects().await? {
            if self.has_key(&subject).await? {
                tracing::warn!(%subject, "a restored key of an erased subject was erased again");
                again += 1;
            }
            if !self.is_erased(&subject).await? {
                self.tombstone(&subject).await?;
            }
        }
        self.ledger = Some(ledger);
        Ok((self, again))
    }

    /// Seals `plaintext` as field `field` of `subject`, creating the subject's key if it
    /// has none. Refuses with [`Error::Erased`] once the subject has been erased (a
    /// tombstone stays in place of the key), so that a late write never gives an erased
    /// person a fresh key.
    pub async fn seal(&self, subject: &str, field: &str, plaintext: &str) -> Result<Sealed, Error> {
        let key = match self.load_key(subject).await? {
            Some(k) => k,
            None if self.is_erased(subject).await? => return Err(Error::Erased(subject.into())),
            None => self.create_key(subject).await?,
        };
        let cipher = XChaCha20Poly1305::new_from_slice(&key).expect("32-byte key");
        let bytes = seal_bytes(&cipher, &field_aad(subject, field), plaintext.as_bytes());
        Ok(Sealed(format!("{}{}", Sealed::PREFIX, B64.encode(bytes))))
    }

    /// A keyed digest of `data` for `purpose` (HMAC-SHA256 under a key derived from the
    /// master key), in hex: for values that are compared but never read back, such as a
    /// request body kept only to tell a retry from a new request. Equal inputs give equal
    /// digests; without the master key a digest does not even confirm a guessed input, as
    /// a bare hash of a short body with a name in it would.
    pub fn digest(&self, purpose: &str, data: &[u8]) -> String {
        use hmac::{KeyInit, Mac};
        let mut derive =
            <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.master.key).expect("HMAC takes any key");
        derive.update(b"samskab digest\0");
        derive.update(purpose.as_bytes());
        let key = derive.finalize().into_bytes();
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).expect("HMAC takes any key");
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }

    /// Seals a serialisable value as JSON.
    pub async fn seal_json<T: serde::Serialize>(&self, subject: &str, field: &str, value: &T) -> Result<Sealed, Error> {
        let text = serde_json::to_string(value)
            .map_err(|e| Error::Corrupt { subject: subject.into(), reason: e.to_string() })?;
        self.seal(subject, field, &text).await
    }

    /// Opens a sealed field: `Ok(None)` when the subject's key is gone (erased).
    pub async fn unseal(&self, subject: &str, field: &str, sealed: &Sealed) -> Result<Option<String>, Error> {
        let Some(key) = self.load_key(subject).await? else { return Ok(None) };
        open_with(&key, subject, field, sealed).map(Some)
    }

    /// Opens a sealed JSON value.
    pub async fn unseal_json<T: serde::de::DeserializeOwned>(
        &self,
        subject: &str,
        field: &str,
        sealed: &Sealed,
    ) -> Result<Option<T>, Error> {
        match self.unseal(subject, field, sealed).await? {
            None => Ok(None),
            Some(text) => parse_opened(subject, &text).map(Some),
        }
    }

    /// Opens sealed JSON values of many subjects (`(subject, field, sealed)` each), their
    /// keys read in one statement per [`KEYS_AT_ONCE`] subjects rather than one each: a
    /// list of residents opens each name. Each answer is `None` when its subject's key is
    /// gone (erased); the keys are read at the call, never kept (see the crate's header).
    pub async fn unseal_json_many<T: serde::de::DeserializeOwned>(
        &self,
        sealed: &[(&str, &str, &Sealed)],
    ) -> Result<Vec<Option<T>>, Error> {
        let mut subjects: Vec<&str> = sealed.iter().map(|(s, _, _)| *s).collect();
        subjects.sort_unstable();
        subjects.dedup();
        let mut keys = std::collections::HashMap::with_capacity(subjects.len());
        for chunk in subjects.chunks(KEYS_AT_ONCE) {
            for (subject, wrapped, id) in self.load_wrapped_many(chunk).await? {
                if let Some(key) = self.unwrap_stored(&subject, &wrapped, &id)? {
                    keys.insert(subject, key);
                }
            }
        }
        sealed
            .iter()
            .map(|(subject, field, value)| match keys.get(*subject) {
                None => Ok(None),
                Some(key) => parse_opened(subject, &open_with(key, subject, field, value)?).map(Some),
            })
            .collect()
    }

    /// Destroys a subject's key, leaving a tombstone so that no new key is ever created for
    /// it. Returns whether a key was destroyed; erasing twice is harmless.
    pub async fn erase(&self, subject: &str) -> Result<bool, Error> {
        let had_key = self.has_key(subject).await?;
        // The ledger first: if the process dies between the two, the next start erases
        // the key from the ledger.
        if let Some(ledger) = &self.ledger {
            ledger.record(subject).await?;
        }
        self.tombstone(subject).await?;
        Ok(had_key)
    }

    async fn tombstone(&self, subject: &str) -> Result<(), Error> {
        let (s, now) = (subject.to_owned(), chrono::Utc::now().to_rfc3339());
        self.store
            .transaction(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "INSERT INTO keystore_keys (subject, wrapped, master_key_id, created_at, erased_at) \
                         VALUES ($1, '', '', $2, $2) \
                         ON CONFLICT (subject) DO UPDATE SET wrapped = '', master_key_id = '', erased_at = excluded.erased_at",
                        &[Arg::Text(s), Arg::Text(now)],
                    )
                    .await
                })
            })
            .await?;
        Ok(())
    }

    /// Whether a subject has been erased.
    pub async fn is_erased(&self, subject: &str) -> Result<bool, Error> {
        Ok(self.load_wrapped(subject).await?.is_some_and(|(w, _)| w.is_empty()))
    }

    /// Whether a subject has a (live) key.
    pub async fn has_key(&self, subject: &str) -> Result<bool, Error> {
        Ok(self.load_wrapped(subject).await?.is_some_and(|(w, _)| !w.is_empty()))
    }

    /// Re-wraps every key from `old` master key to this store's master key: the rotation
    /// procedure (run with both keys, then retire the old one).
    pub async fn rewrap_from(&self, old: &MasterKey) -> Result<u64, Error> {
        let rows: Vec<(String, String, String)> = match (self.store.sqlite_pool(), self.store.pg_pool()) {
            (Some(p), _) => {
                sqlx::query_as("SELECT subject, wrapped, master_key_id FROM keystore_keys").fetch_all(p).await?
            }
            (_, Some(p)) => {
                sqlx::query_as("SELECT subject, wrapped, master_key_id FROM keystore_keys").fetch_all(p).await?
            }
            _ => unreachable!("a store has one backend"),
        };
        let mut n = 0;
        for (subject, wrapped, id) in rows {
            if wrapped.is_empty() || id == self.master.id() {
                continue;
            }
            if id != old.id() {
                return Err(Error::WrongMasterKey(subject));
            }
            let key = unwrap_key(old, &subject, &wrapped)?;
            let rewrapped = B64.encode(seal_bytes(&self.master.cipher(), &wrap_aad(&subject), &key));
            let (s, w, mid) = (subject.clone(), rewrapped, self.master.id());
            self.store
                .transaction(move |tx| {
                    Box::pin(async move {
                        tx.execute(
                            "UPDATE keystore_keys SET wrapped = $2, master_key_id = $3 WHERE subject = $1",
                            &[Arg::Text(s), Arg::Text(w), Arg::Text(mid)],
                        )
                        .await
                    })
                })
                .await?;
            n += 1;
        }
        Ok(n)
    }

    async fn load_wrapped(&self, subject: &str) -> Result<Option<(String, String)>, Error> {
        let row: Option<(String, String)> = match (self.store.sqlite_pool(), self.store.pg_pool()) {
            (Some(p), _) => {
                sqlx::query_as("SELECT wrapped, master_key_id FROM keystore_keys WHERE subject = $1")
                    .bind(subject)
                    .fetch_optional(p)
                    .await?
            }
            (_, Some(p)) => {
                sqlx::query_as("SELECT wrapped, master_key_id FROM keystore_keys WHERE subject = $1")
                    .bind(subject)
                    .fetch_optional(p)
                    .await?
            }
            _ => unreachable!("a store has one backend"),
        };
        Ok(row)
    }

    /// The stored rows of several subjects' keys, in no particular order; subjects without
    /// a row are left out.
    async fn load_wrapped_many(&self, subjects: &[&str]) -> Result<Vec<(String, String, String)>, Error> {
        let rows = match (self.store.sqlite_pool(), self.store.pg_pool()) {
            (Some(p), _) => {
                let marks = vec!["?"; subjects.len()].join(", ");
                let sql =
                    format!("SELECT subject, wrapped, master_key_id FROM keystore_keys WHERE subject IN ({marks})");
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for s in subjects {
                    q = q.bind(*s);
                }
                q.fetch_all(p).await?
            }
            (_, Some(p)) => {
                // On the primary key, a few subjects per call.
                sqlx::query_as("SELECT subject, wrapped, master_key_id FROM keystore_keys WHERE subject = ANY($1)")
                    .bind(subjects)
                    .fetch_all(p)
                    .await?
            }
            _ => unreachable!("a store has one backend"),
        };
        Ok(rows)
    }

    async fn load_key(&self, subject: &str) -> Result<Option<Vec<u8>>, Error> {
        let Some((wrapped, id)) = self.load_wrapped(subject).await? else { return Ok(None) };
        self.unwrap_stored(subject, &wrapped, &id)
    }

    /// A stored key unwrapped: `None` for an erased subject's tombstone.
    fn unwrap_stored(&self, subject: &str, wrapped: &str, master_key_id: &str) -> Result<Option<Vec<u8>>, Error> {
        if wrapped.is_empty() {
            return Ok(None);
        }
        if master_key_id != self.master.id() {
            return Err(Error::WrongMasterKey(subject.into()));
        }
        unwrap_key(&self.master, subject, wrapped).map(Some)
    }

    async fn create_key(&self, subject: &str) -> Result<Vec<u8>, Error> {
        let mut key = vec![0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut key);
        let wrapped = B64.encode(seal_bytes(&self.master.cipher(), &wrap_aad(subject), &key));
        let (s, mid) = (subject.to_owned(), self.master.id());
        self.store
            .transaction(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "INSERT INTO keystore_keys (subject, wrapped, master_key_id, created_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (subject) DO NOTHING",
                        &[Arg::Text(s), Arg::Text(wrapped), Arg::Text(mid), Arg::Text(chrono::Utc::now().to_rfc3339())],
                    )
                    .await
                })
            })
            .await?;
        // A concurrent writer may have created the key first (use whichever is stored), or
        // the subject was erased meanwhile.
        self.load_key(subject).await?.ok_or_else(|| Error::Erased(subject.into()))
    }
}

/// Subjects whose keys [`KeyStore::unseal_json_many`] reads in one statement.
pub const KEYS_AT_ONCE: usize = 100;

/// Opens one sealed field with its subject's key.
fn open_with(key: &[u8], subject: &str, field: &str, sealed: &Sealed) -> Result<String, Error> {
    let corrupt = |reason: &str| Error::Corrupt { subject: subject.into(), reason: reason.into() };
    let b64 = sealed.0.strip_prefix(Sealed::PREFIX).ok_or_else(|| corrupt("not a sealed value"))?;
    let bytes = B64.decode(b64).map_err(|_| corrupt("bad base64"))?;
    let cipher = XChaCha20Poly1305::new_from_slice(key).expect("32-byte key");
    let plain =
        open_bytes(&cipher, &field_aad(subject, field), &bytes).ok_or_else(|| corrupt("authentication failed"))?;
    String::from_utf8(plain).map_err(|_| corrupt("not UTF-8"))
}

/// An opened value read as JSON. The parser's message could quote the plaintext: only its
/// position is kept.
fn parse_opened<T: serde::de::DeserializeOwned>(subject: &str, text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt {
        subject: subject.into(),
        reason: format!("opened value is not the expected JSON (line {}, column {})", e.line(), e.column()),
    })
}

fn unwrap_key(master: &MasterKey, subject: &str, wrapped: &str) -> Result<Vec<u8>, Error> {
    let corrupt = |reason: &str| Error::Corrupt { subject: subject.into(), reason: reason.into() };
    let bytes = B64.decode(wrapped).map_err(|_| corrupt("bad wrapped key"))?;
    open_bytes(&master.cipher(), &wrap_aad(subject), &bytes).ok_or_else(|| corrupt("wrapped key fails authentication"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_keys_parse_from_hex_and_base64() {
        let k = MasterKey::generate();
        assert_eq!(MasterKey::parse(&k.to_hex()).unwrap().id(), k.id());
        assert_eq!(MasterKey::parse(&B64.encode(k.key)).unwrap().id(), k.id());
        assert!(MasterKey::parse("too short").is_err());
    }

    #[test]
    fn a_generated_master_key_file_is_private() {
        let dir = std::env::temp_dir().join(format!("samskab-mk-{}", rand::rng().next_u64()));
        let k = MasterKey::from_env_or_data_dir(Some(&dir)).unwrap();
        let again = MasterKey::from_env_or_data_dir(Some(&dir)).unwrap();
        assert_eq!(k.id(), again.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(MASTER_KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn sealed_bytes_are_bound_to_their_associated_data() {
        let c = MasterKey::generate().cipher();
        let s = seal_bytes(&c, b"a", "Ærø Østergård".as_bytes());
        assert_eq!(open_bytes(&c, b"a", &s).unwrap(), "Ærø Østergård".as_bytes());
        assert!(open_bytes(&c, b"b", &s).is_none());
        assert!(!String::from_utf8_lossy(&s).contains("Ærø"));
    }
}
