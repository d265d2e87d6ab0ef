//! `--history EVENTS`: a long history, then the cost of rebuilding from it and of starting
//! with it (issue 8, item 2). Public interfaces only: REST and the `samskab` binary.
//!
//! 1. builds the world over REST on the all-in-one (as the mix does) and stops it;
//! 2. runs `samskab generate-history --events EVENTS` as a process: booking's own code
//!    appends that many events of past rides to its log (see `booking::history`), and
//!    prints the counts it generated per chapter and a baseline (one plain read of
//!    booking's log);
//! 3. runs `samskab rebuild-projections` as a process and times it (events/s of the logs);
//! 4. starts `samskab serve` on that history several times and times each start to
//!    `/readyz` 200 and to the first answer of a chapter's stats;
//! 5. checks that the stats agree with what was generated (the rebuild is right).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::world::call;
use crate::{Args, system::System};

/// Counts `samskab generate-history` generated in one chapter.
#[derive(Default, Clone, Copy)]
struct Expected {
    trips: u64,
    rides: u64,
    no_shows: u64,
    cancelled_rider: u64,
}

impl Expected {
    fn of(v: &Value) -> Expected {
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        Expected {
            trips: n("trips"),
            rides: n("rides"),
            no_shows: n("no_shows"),
            cancelled_rider: n("cancelled_rider"),
        }
    }
}

/// `samskab generate-history` on the stopped all-in-one's data directory: its JSON line.
async fn generate(sys: &System, events: u64, seed: u64) -> Result<Value, String> {
    eprintln!("samskab-load: history: samskab generate-history --events {events}");
    let out = tokio::process::Command::new(&sys.bin)
        .arg("generate-history")
        .arg("--events")
        .arg(events.to_string())
        .arg("--seed")
        .arg(seed.to_string())
        .arg("--data-dir")
        .arg(&sys.data_dir)
        .env("SAMSKAB_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{} generate-history: {e}", sys.bin.display()))?
        .wait_with_output()
        .await
        .map_err(|e| format!("{} generate-history: {e}", sys.bin.display()))?;
    if !out.status.success() {
        return Err(format!("generate-history failed ({})", out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or_default();
    serde_json::from_str(line).map_err(|e| format!("generate-history printed no JSON line ({e}): {stdout}"))
}

/// The figures of one history run.
pub struct Figures {
    /// Events in the three logs.
    pub events: u64,
    /// Wall time of `samskab rebuild-projections`.
    pub rebuild_secs: f64,
    /// Its peak RSS.
    pub rebuild_rss: Option<u64>,
    /// Baseline: events of booking's log read in one pass, and the seconds it took.
    pub read: (u64, f64),
    /// Lines it printed (per component).
    pub rebuild_lines: Vec<String>,
    /// Start to `/readyz` 200, per start.
    pub ready_secs: Vec<f64>,
    /// Start to the first chapter stats answer, per start.
    pub stats_secs: Vec<f64>,
    /// The chapter's reads over the history, warm: path, median seconds of three, bytes.
    pub reads: Vec<(String, f64, usize)>,
    /// Peak RSS of the all-in-one after the last start.
    pub rss: Option<u64>,
}

/// Runs the whole measurement on the all-in-one.
pub async fn run(args: &Args, events: u64, http: &reqwest::Client) -> Result<(), String> {
    if args.url.is_some() || args.target != crate::Target::AllInOne {
        return Err("--history runs on the all-in-one it starts (no --url, --target all-in-one)".into());
    }
    let mut sys = System::start(args).await?;
    let world = crate::world::build(args, &sys, http).await;
    sys.stop().await;
    sys.forget_processes();
    let world = world?;
    let generated = generate(&sys, events, args.seed).await?;
    let read_secs = {
        let n = generated["read"]["events"].as_u64().unwrap_or(0);
        let secs = generated["read"]["secs"].as_f64().unwrap_or(f64::NAN);
        eprintln!("samskab-load: history: read {n} events of booking's log in {secs:.2} s (baseline)");
        (n, secs)
    };

    eprintln!("samskab-load: history: samskab rebuild-projections");
    let began = Instant::now();
    // GNU time reports the peak RSS when it is installed.
    let gnu_time = std::path::Path::new("/usr/bin/time").exists();
    let mut cmd = if gnu_time {
        let mut c = tokio::process::Command::new("/usr/bin/time");
        c.args(["-f", "maxrss_kb=%M"]).arg(&sys.bin);
        c
    } else {
        tokio::process::Command::new(&sys.bin)
    };
    let out = cmd
        .arg("rebuild-projections")
        .arg("--data-dir")
        .arg(&sys.data_dir)
        .env("SAMSKAB_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| e.to_string())?;
    let rebuild_secs = began.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!("rebuild-projections failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let rebuild_rss = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb=").and_then(|v| v.trim().parse::<u64>().ok()))
        .map(|kb| kb * 1024);
    let rebuild_lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("events of the log rebuilt"))
        .map(str::to_owned)
        .collect();
    // Events in all three logs: each line is `<component>: <events> events of the log rebuilt ...`.
    let total: u64 = rebuild_lines.iter().filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()).sum();

    let chapter = world.chapters[0];
    let mut ready_secs = Vec::new();
    let mut stats_secs = Vec::new();
    let mut rss = None;
    let mut reads = Vec::new();
    for round in 0..3 {
        let began = sys.serve_again()?;
        sys.wait_ready(&[]).await?;
        ready_secs.push(began.elapsed().as_secs_f64());
        let token = sys.token("chapter_admin", Some(("chapter", chapter))).await?;
        let (st, stats) = loop {
            let (st, v) =
                call(http, Method::GET, &format!("{}/v1/stats?chapter_id={chapter}", sys.base), &token, None, None)
                    .await;
            if st != 503 {
                break (st, v);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        stats_secs.push(began.elapsed().as_secs_f64());
        if st != 200 {
            return Err(format!("GET /v1/stats: {st} {stats}"));
        }
        if round == 0 {
            check(&stats, Expected::of(&generated["chapters"][chapter.to_string()]))?;
        }
        if round == 2 {
            let home = world.homes_of[0].first().map(|h| world.homes[*h].id).ok_or("a care home")?;
            reads = read_reports(http, &sys.base, &token, chapter, home, world.chapters.len(), &stats).await?;
        }
        rss = sys.memory().into_iter().next().and_then(|m| m.peak_rss);
        sys.stop().await;
        sys.forget_processes();
    }
    let f = Figures {
        events: total,
        rebuild_secs,
        rebuild_rss,
        read: read_secs,
        rebuild_lines,
        ready_secs,
        stats_secs,
        rss,
        reads,
    };
    print!("{}", table(&f));
    Ok(())
}

/// Times the reads a chapter's admin makes over the history (the stats first: the
/// baseline, one booking call), three times each, warm; checks that the riders the
/// participation report counts are the riders the stats count.
async fn read_reports(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    chapter: uuid::Uuid,
    home: uuid::Uuid,
    chapters: usize,
    stats: &Value,
) -> Result<Vec<(String, f64, usize)>, String> {
    let paths = [
        format!("/v1/stats?chapter_id={chapter}"),
        format!("/v1/reports/pilot-participation?chapter_id={chapter}"),
        format!("/v1/reports/rider-participation?chapter_id={chapter}"),
        format!("/v1/exports/rides.csv?chapter_id={chapter}"),
        format!("/v1/exports/residents.csv?chapter_id={chapter}"),
        format!("/v1/reach?carehome_id={home}&days=3660"),
    ];
    let mut out = Vec::new();
    // The stats as the log stood a moment ago, once booking's first pass of snapshots is
    // done (it starts 30 s after the start; `booking_stats_snapshots_total` counts each
    // chapter's outcome): every ride event of the history counts, so the figures must
    // equal the plain stats (checked below).
    let as_of = async {
        let began = Instant::now();
        loop {
            let text = http
                .get(format!("{base}/metrics"))
                .send()
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?;
            let passes: f64 = text
                .lines()
                .filter(|l| l.starts_with("booking_stats_snapshots_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            if passes >= chapters as f64 {
                eprintln!("samskab-load: history: stats snapshots taken after {:.1} s", began.elapsed().as_secs_f64());
                break;
            }
            if began.elapsed() > Duration::from_secs(300) {
                return Err("booking took no stats snapshots within 300 s".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok::<_, String>(format!(
            "/v1/stats?chapter_id={chapter}&as_of={}",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ))
    };
    let paths: Vec<String> = paths.into_iter().map(Ok).chain(std::iter::once(as_of.await)).collect::<Result<_, _>>()?;
    for path in paths {
        let mut secs = Vec::new();
        let mut body = Vec::new();
        for _ in 0..3 {
            let began = Instant::now();
            let r = http.get(format!("{base}{path}")).bearer_auth(token).send().await.map_err(|e| e.to_string())?;
            let status = r.status().as_u16();
            body = r.bytes().await.map_err(|e| e.to_string())?.to_vec();
            secs.push(began.elapsed().as_secs_f64());
            if status != 200 {
                return Err(format!("GET {path}: {status} {}", String::from_utf8_lossy(&body)));
            }
        }
        if path.contains("as_of=") {
            let answer: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            let differs =
                stats.as_object().into_iter().flatten().any(|(k, v)| k != "as_of" && answer.get(k) != Some(v));
            if differs {
                return Err(format!("the stats as of now differ from the stats: {answer} against {stats}"));
            }
        }
        if path.contains("rider-participation") {
            let report: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            let carried: u64 =
                report["items"].as_array().into_iter().flatten().filter_map(|i| i["completed"].as_u64()).sum();
            if Some(carried) != stats["rides"].as_u64() {
                return Err(format!(
                    "rider participation counts {carried} rides carried, the stats {}",
                    stats["rides"]
                ));
            }
        }
        secs.sort_by(f64::total_cmp);
        out.push((path, secs[1], body.len()));
    }
    Ok(out)
}

fn check(stats: &Value, e: Expected) -> Result<(), String> {
    let got = |k: &str| stats[k].as_u64().unwrap_or(u64::MAX);
    let mut wrong = Vec::new();
    for (k, want) in [("trips", e.trips), ("rides", e.rides), ("no_shows", e.no_shows)] {
        if got(k) != want {
            wrong.push(format!("{k}: {} ≠ {want} generated", got(k)));
        }
    }
    let rider = stats["cancelled"]["rider"].as_u64().unwrap_or(u64::MAX);
    if rider != e.cancelled_rider {
        wrong.push(format!("cancelled.rider: {rider} ≠ {} generated", e.cancelled_rider));
    }
    if !wrong.is_empty() {
        return Err(format!("the stats after the rebuild disagree with the history: {}", wrong.join("; ")));
    }
    eprintln!(
        "samskab-load: history: stats after the rebuild match the history ({} trips, {} rides, {} no-shows, {} cancelled)",
        e.trips, e.rides, e.no_shows, e.cancelled_rider
    );
    Ok(())
}

fn table(f: &Figures) -> String {
    let median = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let rate = f.events as f64 / f.rebuild_secs.max(1e-9);
    let mut out = String::new();
    out.push_str(&format!("# rebuild and cold start over {} events (all-in-one, SQLite)\n\n", f.events));
    out.push_str("| measurement | figure | target |\n|---|---:|---|\n");
    out.push_str(&format!(
        "| `samskab rebuild-projections`, wall time (process start to exit) | {:.2} s | |\n",
        f.rebuild_secs
    ));
    out.push_str(&format!(
        "| events of the logs rebuilt per second | {rate:.0} | ≥ 100,000: {} |\n",
        if rate >= 100_000.0 { "met" } else { "**missed**" }
    ));
    let read_rate = f.read.0 as f64 / f.read.1.max(1e-9);
    out.push_str(&format!(
        "| baseline: one pass reading all {} events of booking's log, events/s | {read_rate:.0} | |\n",
        f.read.0
    ));
    out.push_str(&format!("| rebuild ÷ baseline | {:.2} | |\n", rate / read_rate.max(1e-9)));
    if let Some(r) = f.rebuild_rss {
        out.push_str(&format!("| peak RSS of `samskab rebuild-projections` | {:.0} MB | |\n", r as f64 / 1e6));
    }
    let ready = median(&f.ready_secs);
    out.push_str(&format!(
        "| start to `/readyz` 200, median of {} ({}) | {ready:.2} s | < 3 s: {} |\n",
        f.ready_secs.len(),
        f.ready_secs.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>().join(", "),
        if ready < 3.0 { "met" } else { "**missed**" }
    ));
    out.push_str(&format!(
        "| start to the first chapter stats answer, median ({}) | {:.2} s | |\n",
        f.stats_secs.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>().join(", "),
        median(&f.stats_secs)
    ));
    if let Some(r) = f.rss {
        out.push_str(&format!(
            "| peak RSS of the all-in-one after a start and one stats call | {:.1} MB | |\n",
            r as f64 / 1e6
        ));
    }
    if !f.reads.is_empty() {
        out.push_str("\n| the chapter's reads over the history, warm | median of 3 | body |\n|---|---:|---:|\n");
        for (path, secs, bytes) in &f.reads {
            out.push_str(&format!("| `GET {path}` | {:.0} ms | {:.0} kB |\n", secs * 1000.0, *bytes as f64 / 1e3));
        }
    }
    out.push('\n');
    for l in &f.rebuild_lines {
        out.push_str(&format!("    {l}\n"));
    }
    out
}
