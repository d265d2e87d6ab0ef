//! The report: a table for people, JSON for machines, with issue 8's targets beside the figures.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::Args;
use crate::drive::{OpStats, Phase};
use crate::system::{Memory, System};
use crate::world::World;

/// Order of the operations in the report.
const ORDER: [&str; 7] = ["availability", "get_ride", "list_rides", "book", "cancel", "start", "complete"];

struct Row {
    name: String,
    count: u64,
    per_sec: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    statuses: Vec<(u16, u64)>,
    server_errors: u64,
}

impl Row {
    fn of(name: &str, mut s: OpStats, secs: f64) -> Row {
        Row {
            name: name.to_owned(),
            count: s.count(),
            per_sec: s.count() as f64 / secs.max(1e-9),
            p50: s.percentile_ms(0.50),
            p95: s.percentile_ms(0.95),
            p99: s.percentile_ms(0.99),
            server_errors: s.server_errors(),
            statuses: s.statuses.into_iter().collect(),
        }
    }

    fn json(&self) -> Value {
        let statuses: serde_json::Map<String, Value> =
            self.statuses.iter().map(|(s, n)| (s.to_string(), json!(n))).collect();
        json!({
            "count": self.count, "per_sec": round(self.per_sec), "p50_ms": round(self.p50), "p95_ms": round(self.p95),
            "p99_ms": round(self.p99), "statuses": statuses, "server_errors": self.server_errors,
        })
    }
}

struct Target {
    what: &'static str,
    target: &'static str,
    measured: String,
    met: Option<bool>,
}

/// Everything measured in one run.
pub struct Report {
    header: Value,
    ops: Vec<Row>,
    mix: Row,
    baseline: Row,
    bookings: u64,
    bookings_per_sec: f64,
    booking_p99: f64,
    server_errors: u64,
    procs: Vec<Memory>,
    targets: Vec<Target>,
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn mb(b: Option<u64>) -> Option<f64> {
    b.map(|b| round(b as f64 / (1024.0 * 1024.0)))
}

impl Report {
    /// Puts the figures together.
    pub fn new(args: &Args, sys: &System, world: &World, baseline: Phase, mix: Phase, procs: Vec<Memory>) -> Report {
        let secs = mix.secs;
        let total = mix.total();
        let book = mix.ops.get("book").cloned().unwrap_or_default();
        let bookings = book.with_status(201);
        let mut ops: Vec<Row> =
            ORDER.iter().map(|n| Row::of(n, mix.ops.get(n).cloned().unwrap_or_default(), secs)).collect();
        for (n, s) in &mix.ops {
            if !ORDER.contains(n) {
                ops.push(Row::of(n, s.clone(), secs));
            }
        }
        let booking_p99 = ops.iter().find(|r| r.name == "book").map(|r| r.p99).unwrap_or(0.0);
        let mix_row = Row::of("mix (all)", total, secs);
        let baseline_row =
            Row::of("baseline GET /healthz", baseline.ops.get("healthz").cloned().unwrap_or_default(), baseline.secs);
        let server_errors = mix_row.server_errors + baseline_row.server_errors;
        let bookings_per_sec = bookings as f64 / secs.max(1e-9);
        let sqlite = sys.backend == "sqlite";
        let all_in_one = sys.kind == "all-in-one";
        // One process (all-in-one): its peak; separate processes: the sum of their peaks.
        let peaks: Vec<u64> = procs.iter().filter_map(|p| p.peak_rss).collect();
        let peak: Option<u64> = (!peaks.is_empty()).then(|| peaks.iter().sum());
        let targets = vec![
            Target {
                what: "bookings/s inside the mix",
                target: ">= 200",
                measured: format!("{bookings_per_sec:.1}"),
                met: Some(bookings_per_sec >= 200.0),
            },
            Target {
                what: "booking p99 (SQLite)",
                target: "< 25 ms",
                measured: format!("{booking_p99:.2} ms"),
                met: sqlite.then_some(booking_p99 < 25.0),
            },
            Target {
                what: "5xx answers",
                target: "0",
                measured: server_errors.to_string(),
                met: Some(server_errors == 0),
            },
            Target {
                what: "peak RSS of the all-in-one",
                target: "< 150 MB",
                measured: peak
                    .map(|b| format!("{}{:.1} MB", if peaks.len() > 1 { "sum " } else { "" }, b as f64 / 1048576.0))
                    .unwrap_or_else(|| "not measured".into()),
                met: (all_in_one && peak.is_some()).then(|| peak.unwrap_or(0) < 150 * 1024 * 1024),
            },
        ];
        let header = json!({
            "target": sys.kind, "backend": sys.backend, "base_url": sys.base, "concurrency": args.concurrency,
            "mix_secs": round(secs), "baseline_secs": round(baseline.secs), "seed": args.seed,
            "world": {
                "chapters": world.chapters.len(), "carehomes": world.homes.len(),
                "bikes": world.homes.iter().map(|h| h.bikes.len()).sum::<usize>(),
                "residents": world.homes.iter().map(|h| h.residents.len()).sum::<usize>(),
                "pilots": world.pilots.len(), "build_secs": round(world.build_secs), "warmup_bookings": world.warmup_rides,
            },
            "measured_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "load_average": std::fs::read_to_string("/proc/loadavg").ok().map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
        });
        Report {
            header,
            ops,
            mix: mix_row,
            baseline: baseline_row,
            bookings,
            bookings_per_sec,
            booking_p99,
            server_errors,
            procs,
            targets,
        }
    }

    fn ratios(&self) -> (Option<f64>, Option<f64>) {
        let ops = (self.baseline.per_sec > 0.0).then(|| self.mix.per_sec / self.baseline.per_sec);
        let p99 = (self.baseline.p99 > 0.0).then(|| self.booking_p99 / self.baseline.p99);
        (ops, p99)
    }

    /// The machine-readable report.
    pub fn json(&self) -> Value {
        let (ops_ratio, p99_ratio) = self.ratios();
        let mut v = self.header.clone();
        v["operations"] = self.ops.iter().map(|r| (r.name.clone(), r.json())).collect::<serde_json::Map<_, _>>().into();
        v["mix"] = self.mix.json();
        v["baseline"] = self.baseline.json();
        v["baseline"]["endpoint"] = json!("GET /healthz");
        v["bookings"] = json!({"created": self.bookings, "per_sec": round(self.bookings_per_sec), "p99_ms": round(self.booking_p99)});
        v["ratio"] = json!({"ops_per_sec_mix_over_baseline": ops_ratio.map(round), "booking_p99_over_baseline_p99": p99_ratio.map(round)});
        v["server_errors"] = json!(self.server_errors);
        v["processes"] = self
            .procs
            .iter()
            .map(|p| json!({"name": p.name, "pid": p.pid, "peak_rss_mb": mb(p.peak_rss), "max_sampled_rss_mb": mb(p.max_sampled_rss)}))
            .collect::<Vec<_>>()
            .into();
        v["targets"] = self
            .targets
            .iter()
            .map(|t| json!({"what": t.what, "target": t.target, "measured": t.measured, "met": t.met}))
            .collect::<Vec<_>>()
            .into();
        v
    }

    /// The table for people.
    pub fn table(&self) -> String {
        let h = &self.header;
        let w = &h["world"];
        let mut o = String::new();
        let _ = writeln!(
            o,
            "Samskab load: {} ({}) at {}, concurrency {}, mix {:.1} s, baseline {:.1} s, load average {}",
            h["target"].as_str().unwrap_or(""),
            h["backend"].as_str().unwrap_or(""),
            h["base_url"].as_str().unwrap_or(""),
            h["concurrency"],
            h["mix_secs"].as_f64().unwrap_or(0.0),
            h["baseline_secs"].as_f64().unwrap_or(0.0),
            h["load_average"].as_str().unwrap_or("?"),
        );
        let _ = writeln!(
            o,
            "world: {} chapters, {} care homes, {} trishaws, {} residents, {} pilots (built in {} s, {} warm-up bookings)\n",
            w["chapters"],
            w["carehomes"],
            w["bikes"],
            w["residents"],
            w["pilots"],
            w["build_secs"],
            w["warmup_bookings"]
        );
        let _ = writeln!(
            o,
            "{:<24} {:>8} {:>9} {:>8} {:>8} {:>8}  statuses",
            "operation", "count", "ops/s", "p50 ms", "p95 ms", "p99 ms"
        );
        let line = |o: &mut String, r: &Row| {
            let st: Vec<String> = r.statuses.iter().map(|(s, n)| format!("{s}:{n}")).collect();
            let flag = if r.server_errors > 0 { "  <-- 5xx!" } else { "" };
            let _ = writeln!(
                o,
                "{:<24} {:>8} {:>9.1} {:>8.2} {:>8.2} {:>8.2}  {}{flag}",
                r.name,
                r.count,
                r.per_sec,
                r.p50,
                r.p95,
                r.p99,
                st.join(" ")
            );
        };
        for r in &self.ops {
            line(&mut o, r);
        }
        line(&mut o, &self.mix);
        line(&mut o, &self.baseline);
        let (ops_ratio, p99_ratio) = self.ratios();
        let f = |x: Option<f64>| x.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            o,
            "\nbookings (201 only): {} = {:.1}/s; booking p99 {:.2} ms",
            self.bookings, self.bookings_per_sec, self.booking_p99
        );
        let _ = writeln!(
            o,
            "ratio to the baseline: mix ops/s ÷ baseline ops/s = {}; booking p99 ÷ baseline p99 = {}",
            f(ops_ratio),
            f(p99_ratio)
        );
        if self.server_errors > 0 {
            let _ = writeln!(
                o,
                "\n!!! {} ANSWERS WITH A 5xx STATUS: a 5xx other than 503 is a bug !!!",
                self.server_errors
            );
        } else {
            let _ = writeln!(o, "5xx answers: none");
        }
        if !self.procs.is_empty() {
            let _ =
                writeln!(o, "\n{:<12} {:>8} {:>18} {:>18}", "process", "pid", "peak RSS (VmHWM)", "max sampled RSS");
            for p in &self.procs {
                let m = |b: Option<f64>| b.map(|b| format!("{b:.1} MB")).unwrap_or_else(|| "-".into());
                let _ = writeln!(
                    o,
                    "{:<12} {:>8} {:>18} {:>18}",
                    p.name,
                    p.pid,
                    m(mb(p.peak_rss)),
                    m(mb(p.max_sampled_rss))
                );
            }
        }
        let _ = writeln!(o, "\ntargets of issue 8 (a benchmark, not a test):");
        for t in &self.targets {
            let verdict = match t.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "n/a for this target",
            };
            let _ = writeln!(o, "  {:<28} {:>9}   measured {:>12}   {verdict}", t.what, t.target, t.measured);
        }
        o
    }
}
