//! Operator commands of the `samskab` binary: signed tokens, migrations, rebuilding the
//! read models from the logs, generating a long history for benchmarks.

use std::time::Duration;

use eventlog::EventStore;
use gateway::{Claims, Keys, Role};
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

use crate::{Error, ServeConfig};

/// What `samskab token` signs.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// `admin`, `chapter_admin`, `coordinator`, `pilot` or `integrator`.
    #[arg(long)]
    pub role: String,
    /// The chapter (chapter_admin; integrator of one chapter).
    #[arg(long)]
    pub chapter: Option<Uuid>,
    /// An integrator of the whole network (instead of `--chapter`).
    #[arg(long)]
    pub network: bool,
    /// The care home (coordinator).
    #[arg(long)]
    pub carehome: Option<Uuid>,
    /// The pilot (pilot).
    #[arg(long)]
    pub pilot: Option<Uuid>,
    /// The pseudonymous user id (default: a fresh random one, so that two tokens of one role
    /// never look like the same person).
    #[arg(long)]
    pub sub: Option<String>,
    /// Hours until it expires (1 to 720).
    #[arg(long = "ttl-hours", default_value_t = 12, value_parser = clap::value_parser!(i64).range(1..=720))]
    pub ttl_hours: i64,
}

/// A signed token for the running configuration (the data directory's JWT keys).
pub fn token(cfg: &ServeConfig, a: &TokenArgs) -> Result<String, Error> {
    let need = |v: Option<Uuid>, what: &str| v.ok_or_else(|| Error::Start(format!("--role {} needs --{what}", a.role)));
    let role = match a.role.as_str() {
        "admin" => Role::Admin,
        "chapter_admin" => Role::ChapterAdmin(need(a.chapter, "chapter")?),
        "coordinator" => Role::Coordinator(need(a.carehome, "carehome")?),
        "pilot" => Role::Pilot(need(a.pilot, "pilot")?),
        "integrator" => match (a.chapter, a.network) {
            (Some(c), false) => Role::Integrator(Some(c)),
            (None, true) => Role::Integrator(None),
            _ => return Err(Error::Start("--role integrator needs --chapter or --network (not both)".into())),
        },
        other => return Err(Error::Start(format!("unknown role {other}"))),
    };
    if a.network && a.role != "integrator" {
        return Err(Error::Start("--network is for --role integrator".into()));
    }
    let sub = a.sub.clone().unwrap_or_else(|| Uuid::new_v4().simple().to_string());
    let keys = Keys::from_env_or_data_dir(cfg.data_dir()).map_err(Error::Start)?;
    Ok(keys.sign(&Claims::new(&sub, role, chrono::Duration::hours(a.ttl_hours))))
}

/// What `samskab invite` issues.
#[derive(Debug, Clone, clap::Args)]
pub struct InviteArgs {
    /// The role: `admin` (the first network administrator; everyone else is invited
    /// through the API by an admin or a chapter admin).
    #[arg(long, value_parser = ["admin"])]
    pub role: String,
    /// Hours until the code expires.
    #[arg(long, default_value_t = domain::access::DEFAULT_INVITATION_HOURS, value_parser = clap::value_parser!(u32).range(1..=2160))]
    pub expires_in_hours: u32,
}

/// Issues an invitation against this configuration's care-home database (the data
/// directory, or `--database-url`; the system may be running) and returns its code, which
/// is shown this once: redeem it signed in, `POST /v1/invitations/redeem {"code": ...}`.
pub async fn invite(cfg: &ServeConfig, a: &InviteArgs) -> Result<String, Error> {
    std::fs::create_dir_all(cfg.data_dir())?;
    let store = EventStore::connect(&cfg.url("carehome")).await?;
    carehome::migrate(&store).await?;
    let ctx = servicekit::CommandCtx::system(Uuid::now_v7(), "samskab-invite");
    let req = samskab_proto::common::v1::IssueInvitationRequest {
        context: None,
        role: a.role.clone(),
        chapter_id: String::new(),
        carehome_id: String::new(),
        pilot_id: String::new(),
        expires_in_hours: a.expires_in_hours,
    };
    let issued = carehome::access::StaffAccess::new(store.clone())
        .issue(&ctx, &req)
        .await
        .map_err(|e| Error::Start(e.to_string()))?;
    store.close().await;
    Ok(issued.code)
}

/// The components with a database, and what each owns.
pub const COMPONENTS: [&str; 5] = ["carehome", "volunteer", "booking", "notify", "gateway"];

/// What `samskab migrate` does besides migrating.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MigrateArgs {
    /// PostgreSQL: also give each component's own database role (`samskab_<component>`,
    /// which must exist) the rights it needs on its schema and its erasure ledger schema,
    /// and none on any other: the least-privilege deployment, where this command runs with
    /// the schemas' owner role and the components cannot change a schema (they check it
    /// is migrated and refuse to start otherwise). See docs/security.md.
    #[arg(long = "grant-roles")]
    pub grant_roles: bool,
}

/// The database role of `component` in a least-privilege deployment (`migrate --grant-roles`,
/// the roles of `deploy/k8s/base/postgres-cluster.yaml`).
pub fn component_role(component: &str) -> String {
    format!("samskab_{component}")
}

/// Applies every migration (stores migrate when opened; services' read models and key
/// stores too, and the erasure ledgers), and with `--grant-roles` gives each component's
/// role its rights.
pub async fn migrate(cfg: &ServeConfig, args: &MigrateArgs) -> Result<(), Error> {
    let postgres = cfg.database_url.as_deref().is_some_and(|u| u.starts_with("postgres"));
    if args.grant_roles && !postgres {
        return Err(Error::Start("--grant-roles needs PostgreSQL (--database-url postgres://...)".into()));
    }
    std::fs::create_dir_all(cfg.data_dir())?;
    if !postgres {
        // A data directory of a release before the key directory: its keys move first.
        crate::secure_data_dir(cfg.data_dir())?;
        crate::move_keys_apart(cfg)?;
    }
    for c in COMPONENTS {
        let store = EventStore::connect(&cfg.url(c)).await?;
        match c {
            "carehome" => carehome::migrate(&store).await?,
            "volunteer" => volunteer::migrate(&store).await?,
            "booking" => booking::migrate(&store).await?,
            "notify" => notify::migrate(&store).await?,
            _ => gateway::migrate(&store).await?,
        }
        keystore::KeyStore::migrate(&store).await.map_err(|e| Error::Start(e.to_string()))?;
        // A ledger in PostgreSQL: its schema (the SQLite file of the embedded default
        // is made by the component that opens it, in the key directory).
        let ledger_url = cfg.ledger_url(c);
        let ledger = match eventlog::backend_of(&ledger_url)? {
            eventlog::Backend::Postgres => Some(EventStore::connect(&ledger_url).await?),
            eventlog::Backend::Sqlite => None,
        };
        if args.grant_roles {
            let role = component_role(c);
            store.grant_component_role(&role).await?;
            if let Some(ledger) = &ledger {
                ledger.grant_component_role(&role).await?;
            }
            println!("{c}: migrated, rights granted to {role}");
        } else {
            println!("{c}: migrated");
        }
        if let Some(ledger) = ledger {
            ledger.close().await;
        }
        store.close().await;
    }
    reseal_free_text(cfg).await
}

/// Seals free text an older release stored in clear in care-home's log, in place (one
/// audit entry), then rebuilds its read models (their documents held the text too) and
/// compacts care-home's and booking's databases (booking's outbox held the feed's old
/// public payloads), so that no copy of the text stays in their files. Needs care-home's
/// master key only when there is something to seal. See docs/eventlog.md.
async fn reseal_free_text(cfg: &ServeConfig) -> Result<(), Error> {
    let store = EventStore::connect(&cfg.url("carehome")).await?;
    let found = carehome::reseal::pending(&store).await?;
    if found.is_empty() {
        store.close().await;
        return Ok(());
    }
    let keys = servicekit::bootstrap::key_store(&store, &cfg.key_config("carehome", false)).await.map_err(|e| {
        Error::Start(format!(
            "{} events of care-home's log hold free text in clear, and sealing it needs care-home's master key: {e}",
            found.len()
        ))
    })?;
    let n = found.len();
    let drops: Vec<(String, String)> = found.iter().map(|c| (c.event_id().to_string(), c.field().to_owned())).collect();
    let entry = carehome::reseal::reseal(&store, &keys, found).await.map_err(|e| Error::Start(e.to_string()))?;
    carehome::rebuild(&store, |_, _| {}).await?;
    store.compact().await?;
    store.close().await;
    let booking = EventStore::connect(&cfg.url("booking")).await?;
    let waiting = booking::cascades::drop_outbox_fields(&booking, &drops).await?;
    booking.compact().await?;
    booking.close().await;
    let gateway = EventStore::connect(&cfg.url("gateway")).await?;
    let queued = gateway::webhooks::drop_queued_fields(&gateway, &drops).await?;
    gateway.compact().await?;
    gateway.close().await;
    println!(
        "carehome: sealed the free text of {n} events written in clear (audit entry {}); read models rebuilt, \
         {waiting} events in booking's outbox and {queued} queued webhook deliveries cleaned, databases compacted",
        entry.unwrap_or_default()
    );
    Ok(())
}

async fn rebuild_one(component: &str, store: &EventStore, progress: impl Fn(u64, u64)) -> Result<u64, Error> {
    Ok(match component {
        "carehome" => carehome::rebuild(store, progress).await?,
        "volunteer" => volunteer::rebuild(store, progress).await?,
        "booking" => booking::rebuild(store, progress).await?,
        "notify" => notify::rebuild(store, progress).await?,
        _ => 0,
    })
}

/// Rebuilds every read model from the logs, with a progress bar. Booking's copies of
/// other services' facts are refetched from their feeds at the next start.
pub async fn rebuild(cfg: &ServeConfig) -> Result<(), Error> {
    for c in ["carehome", "volunteer", "booking", "notify"] {
        let store = EventStore::connect(&cfg.url(c)).await?;
        let events = store.head().await?.position().max(0) as u64;
        let bar = ProgressBar::new(events);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos}/{len} events ({per_sec}, {eta})")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_prefix(c);
        bar.enable_steady_tick(Duration::from_millis(200));
        let started = std::time::Instant::now();
        let n = rebuild_one(c, &store, |done, total| {
            bar.set_length(total.max(done));
            bar.set_position(done);
        })
        .await?;
        bar.finish();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{c}: {events} events of the log rebuilt in {secs:.2} s ({:.0} events/s; {n} read and applied, \
             the rest are events its read models ignore)",
            events as f64 / secs.max(1e-9)
        );
        store.close().await;
    }
    Ok(())
}

/// What `samskab generate-history` generates.
#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// Events to append (whole days: a few more).
    #[arg(long)]
    pub events: u64,
    /// Seed of the generator (the same seed on the same world gives the same rides).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Appends generated past rides to booking's log through booking's own code
/// (`booking::history`), then reads booking's whole log once as a baseline for rebuild
/// benchmarks. Prints one JSON line on stdout: `{"events", "days", "chapters": {id:
/// {"trips", "rides", "no_shows", "cancelled_rider"}}, "read": {"events", "secs"}}`;
/// progress goes to stderr. Run it while Samskab is stopped.
pub async fn generate_history(cfg: &ServeConfig, a: &HistoryArgs) -> Result<(), Error> {
    let store = EventStore::connect(&cfg.url("booking")).await?;
    booking::migrate(&store).await?;
    let began = std::time::Instant::now();
    let progress = |written: u64| {
        eprintln!(
            "generate-history: {written} events written ({:.0} events/s)",
            written as f64 / began.elapsed().as_secs_f64().max(1e-9)
        )
    };
    let generated = booking::history::generate(&store, a.events, a.seed, progress).await.map_err(|e| match e {
        booking::history::Error::Store(e) => Error::Store(e),
        e => Error::Start(e.to_string()),
    })?;
    eprintln!(
        "generate-history: {} events over {} days written in {:.1} s",
        generated.events,
        generated.days,
        began.elapsed().as_secs_f64()
    );
    // Baseline: one pass reading every event of booking's log through the event store (what
    // any replay costs before it applies anything).
    let began = std::time::Instant::now();
    let (mut cursor, mut read) = (eventlog::Cursor::START, 0u64);
    loop {
        let page = store.read_all(cursor, &eventlog::Filter::all(), 10_000).await?;
        if page.events.is_empty() {
            break;
        }
        read += page.events.len() as u64;
        cursor = page.next;
    }
    let secs = began.elapsed().as_secs_f64();
    store.close().await;
    let mut out = serde_json::to_value(&generated).map_err(|e| Error::Start(e.to_string()))?;
    out["read"] = serde_json::json!({ "events": read, "secs": secs });
    println!("{out}");
    Ok(())
}

/// Writes the keys a deployment needs into `dir` (mode 0700), each file (mode 0600) only if
/// it is not there yet: `master.key` (SAMSKAB_MASTER_KEY), `jwt.keys` (SAMSKAB_JWT_KEYS) and
/// `person.key` (SAMSKAB_PERSON_KEY). Returns each file and whether it was written now.
pub fn write_keys(dir: &std::path::Path) -> Result<Vec<(&'static str, bool)>, String> {
    let io = |what: &std::path::Path, e: std::io::Error| format!("{}: {e}", what.display());
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| io(dir, e))?;
    let random_hex = || {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        hex::encode(bytes)
    };
    let files: [(&'static str, String); 3] = [
        (keystore::MASTER_KEY_FILE, random_hex()),
        (gateway::auth::SECRET_FILE, format!("k1={}", random_hex())),
        (gateway::auth::PERSON_KEY_FILE, random_hex()),
    ];
    let mut written = Vec::new();
    for (file, text) in files {
        let path = dir.join(file);
        match write_private(&path, &text) {
            Ok(()) => written.push((file, true)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => written.push((file, false)),
            Err(e) => return Err(io(&path, e)),
        }
    }
    Ok(written)
}

pub use gateway::auth::write_private;

/// `samskab rotate-master-key`: each component of the embedded default gets a new master
/// key of its own, and every key in its database is re-wrapped under it. The new key is
/// written beside the old one first (`master-<component>.key.new`) and replaces it once
/// every key is re-wrapped; run again after an interruption, it finishes the job (keys
/// already under the new key are left as they are). Returns the keys re-wrapped per
/// component.
pub async fn rotate_master_keys(cfg: &ServeConfig) -> Result<Vec<(&'static str, u64)>, Error> {
    use keystore::{KeyStore, MasterKey};
    if [keystore::MASTER_KEY_VAR, keystore::MASTER_KEY_FILE_VAR].iter().any(|v| std::env::var_os(v).is_some()) {
        return Err(Error::Start(
            "the master key comes from the environment here: rotate it with each component's own \
             `rotate-master-key --old-key-file`"
                .into(),
        ));
    }
    let mut moved = Vec::new();
    for component in COMPONENTS {
        let file = cfg.key_file(component);
        let next = file.with_extension("key.new");
        let old = MasterKey::read_file(&file)?;
        let new = if next.exists() {
            MasterKey::read_file(&next)?
        } else {
            let new = MasterKey::generate();
            write_private(&next, &new.to_hex())?;
            new
        };
        let store = EventStore::connect(&cfg.url(component)).await?;
        let keys = KeyStore::connect(&store, new).await?;
        let n = keys.rewrap_from(&old).await?;
        store.close().await;
        std::fs::rename(&next, &file)?;
        moved.push((component, n));
    }
    Ok(moved)
}
