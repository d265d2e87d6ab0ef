//! `samskab-load`: a load generator for Samskab's REST API (issue 8).
//!
//! It starts the system itself (the all-in-one on SQLite, or the four components as separate
//! processes on PostgreSQL) or uses one that runs already, builds its own synthetic world over
//! REST, measures a baseline (the same client and concurrency against `GET /healthz`, the cost
//! of HTTP alone), then drives a realistic mix for a while and reports per operation count,
//! throughput and p50/p95/p99 latency, counts per status code, and the peak RSS of every
//! Samskab process it started, next to the targets of issue 8.

mod drive;
mod history;
mod reminders;
mod report;
mod system;
mod world;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

const ABOUT: &str = "Load generator for Samskab's REST API: builds a synthetic world, measures an HTTP \
baseline (GET /healthz) and then drives a realistic mix (about 70% availability and reads, 20% \
bookings, 10% cancellations, starts and completions), reporting throughput, p50/p95/p99 latency \
per operation, counts per status code (5xx flagged) and the peak RSS of each Samskab process.";

const LONG_ABOUT: &str = "Load generator for Samskab's REST API (issue 8).

What it runs against:
  --target all-in-one (default)  starts `samskab serve` on a temporary data directory (SQLite)
                                 with the rate limit raised; the samskab binary is found next to
                                 this executable (target/release, target/debug) or given with
                                 --samskab-bin.
  --target separate              starts `samskab run carehome|volunteer|booking|gateway` as four
                                 processes on the PostgreSQL server of --database-url, each in its
                                 own fresh schema (samskab_load_<run>_<component>, left behind:
                                 use a throwaway server), sharing a random master key and JWT
                                 secret through the environment.
  --url http://HOST:PORT         an already running system; tokens are signed with
                                 `samskab token --data-dir DIR` for its --data-dir (and the
                                 SAMSKAB_JWT_SECRET of this environment, if set). Its memory is
                                 not measured. Raise its rate limit (SAMSKAB_RATE_LIMIT_PER_MINUTE).

What it does:
  1. builds a world over REST: chapters (time zone UTC), --carehomes care homes open 06:00-22:00
     every day, --bikes-per-home two-seat trishaws each, --residents-per-home residents with
     consent to rides, --pilots pilots qualified for trishaws; tokens per pilot and coordinator;
     waits until booking knows it (availability shows every trishaw, and one warm-up booking per
     pilot and per resident succeeds; those rides join the pool the mix acts on);
  2. baseline: --concurrency clients doing GET /healthz for --baseline-secs seconds;
  3. the mix for --duration seconds at --concurrency: 40% GET availability (one day), 15% GET
     a ride, 15% list rides (a pilot's), 20% POST /v1/rides with an Idempotency-Key in a random
     slot 30-730 days ahead that the generator has not used yet (so bookings mostly succeed),
     10% cancel, start or complete one of the rides it booked. Only 201s count as bookings.
  4. reports per operation count, ops/s, p50/p95/p99 latency (all answers, whatever their
     status), statuses, 5xx (flagged), the peak RSS (VmHWM at the end, and the largest VmRSS
     sampled every 200 ms) of each process it started, the ratios to the baseline, and the
     targets of issue 8 (a benchmark, not a test: missing one does not fail the run).

Output is a table on stdout, or one JSON object with --json (progress goes to stderr).";

/// Where the system under load comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// `samskab serve` on a temporary SQLite data directory.
    AllInOne,
    /// `samskab run <component>` × 4 on PostgreSQL (--database-url).
    Separate,
}

/// The command line.
#[derive(Debug, Clone, Parser)]
#[command(name = "samskab-load", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Args {
    /// Which system to start (ignored with --url).
    #[arg(long, value_enum, default_value = "all-in-one")]
    pub target: Target,
    /// PostgreSQL server for --target separate (postgres://user@host:port/db).
    #[arg(long = "database-url", env = "SAMSKAB_LOAD_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Use a running system at this base URL instead of starting one.
    #[arg(long)]
    pub url: Option<String>,
    /// Data directory: with --url, the running system's (for its token keys); otherwise the
    /// directory to run the started system in (default: a fresh temporary directory).
    #[arg(long = "data-dir")]
    pub data_dir: Option<PathBuf>,
    /// The samskab binary (default: next to this executable).
    #[arg(long = "samskab-bin")]
    pub samskab_bin: Option<PathBuf>,
    /// Concurrent clients (each one request at a time).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds of the mix.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of the baseline (GET /healthz).
    #[arg(long = "baseline-secs", default_value_t = 3.0)]
    pub baseline_secs: f64,
    /// Care homes in the world.
    #[arg(long, default_value_t = 20)]
    pub carehomes: usize,
    /// Care homes per chapter.
    #[arg(long = "homes-per-chapter", default_value_t = 5)]
    pub homes_per_chapter: usize,
    /// Trishaws per care home.
    #[arg(long = "bikes-per-home", default_value_t = 3)]
    pub bikes_per_home: usize,
    /// Residents (with consent) per care home.
    #[arg(long = "residents-per-home", default_value_t = 3)]
    pub residents_per_home: usize,
    /// Qualified pilots, spread over the chapters.
    #[arg(long, default_value_t = 60)]
    pub pilots: usize,
    /// Seed of the random choices.
    #[arg(long, default_value_t = 8)]
    pub seed: u64,
    /// Pilots whose ride reminders fall due during the mix, one a second, to measure how
    /// late reminders reach the inbox under load (0: none).
    #[arg(long = "reminder-probes", default_value_t = 10)]
    pub reminder_probes: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Instead of the mix's weights, only this operation (to see one operation's cost).
    #[arg(long, value_enum)]
    pub only: Option<drive::Only>,
    /// Instead of the mix: have `samskab generate-history` append this many events of past
    /// rides to booking's log, then time `samskab rebuild-projections` and starts of
    /// `samskab serve` on that history (all-in-one on SQLite only).
    #[arg(long)]
    pub history: Option<u64>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // reqwest is linked with rustls without a built-in crypto provider when built with the
    // rest of the workspace (the gateway's webhooks use ring): install it before any client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("samskab-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    if args.concurrency == 0 || args.carehomes == 0 || args.pilots == 0 || args.bikes_per_home == 0 {
        return Err("--concurrency, --carehomes, --pilots and --bikes-per-home must be at least 1".into());
    }
    if args.residents_per_home == 0 || args.homes_per_chapter == 0 {
        return Err("--residents-per-home and --homes-per-chapter must be at least 1".into());
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()
        .map_err(|e| e.to_string())?;
    if let Some(events) = args.history {
        return history::run(&args, events, &http).await;
    }
    let mut sys = system::System::start(&args).await?;
    let sampler = sys.sample_rss();
    let outcome = async {
        let world = world::build(&args, &sys, &http).await?;
        let probe = if args.reminder_probes > 0 {
            let lead = Duration::from_secs_f64(args.baseline_secs + 2.0);
            Some(reminders::prepare(&sys, &http, args.reminder_probes, lead).await?)
        } else {
            None
        };
        let watcher = probe.map(|p| tokio::spawn(p.watch(http.clone(), sys.base.clone())));
        eprintln!(
            "samskab-load: baseline, GET /healthz for {}s at concurrency {}",
            args.baseline_secs, args.concurrency
        );
        let baseline = drive::baseline(&http, &sys.base, args.concurrency, args.baseline_secs).await;
        eprintln!("samskab-load: mix for {}s at concurrency {}", args.duration, args.concurrency);
        let mix = drive::mix(&http, &sys.base, &world, args.concurrency, args.duration, args.seed, args.only).await;
        let late = match watcher {
            Some(w) => Some(w.await.map_err(|e| e.to_string())?),
            None => None,
        };
        Ok::<_, String>((world, baseline, mix, late))
    }
    .await;
    sampler.abort();
    let procs = sys.memory();
    sys.stop().await;
    let (world, baseline, mix, late) = outcome?;
    let report = report::Report::new(&args, &sys, &world, baseline, mix, procs);
    if args.json {
        println!("{:#}", report.json());
    } else {
        print!("{}", report.table());
    }
    if let Some(late) = late {
        let line = format!("reminders reaching the inbox during the mix: {}", reminders::summary(&late));
        if args.json { eprintln!("{line}") } else { println!("{line}") }
    }
    Ok(())
}
