//! The load generator runs end to end against the all-in-one (debug build, SQLite) for a few
//! seconds and reports in the documented JSON shape: bookings made, no 5xx. No timing
//! thresholds: the figures are a benchmark's (`scripts/bench-load`), not a test's.
//!
//! It needs the `samskab` binary of the same profile (`target/debug/samskab`): `scripts/test`
//! builds the whole workspace first; when it is missing this test builds it with
//! `cargo build -p samskab`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const LOAD: &str = env!("CARGO_BIN_EXE_samskab-load");

/// `samskab` next to `samskab-load` (the same target directory and profile), built if missing.
fn samskab() -> PathBuf {
    let bin = PathBuf::from(LOAD).with_file_name("samskab");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "samskab"]).current_dir(env!("CARGO_MANIFEST_DIR"));
        if bin.parent().and_then(|d| d.file_name()).is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        let ok = cmd.status().expect("cargo runs").success();
        assert!(ok && bin.is_file(), "cargo build -p samskab made {}", bin.display());
    }
    bin
}

#[test]
fn a_short_run_against_the_all_in_one_books_rides_and_reports_no_server_error() {
    let out = Command::new(LOAD)
        .args(["--target", "all-in-one", "--concurrency", "4", "--duration", "3", "--baseline-secs", "1"])
        .args(["--carehomes", "4", "--homes-per-chapter", "2", "--pilots", "6", "--json"])
        .arg("--samskab-bin")
        .arg(samskab())
        .output()
        .expect("samskab-load runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "samskab-load failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));

    assert_eq!(report["target"], "all-in-one");
    assert_eq!(report["backend"], "sqlite");
    assert_eq!(report["concurrency"], 4);
    assert_eq!(report["world"]["chapters"], 2);
    assert_eq!(report["world"]["carehomes"], 4);
    assert_eq!(report["world"]["bikes"], 12);
    assert_eq!(report["world"]["pilots"], 6);

    // Every operation of the mix is reported with the same fields.
    let ops = report["operations"].as_object().expect("operations");
    let names: Vec<&str> = ops.keys().map(String::as_str).collect();
    for name in ["availability", "get_ride", "list_rides", "book", "cancel", "start", "complete"] {
        assert!(names.contains(&name), "{name} reported: {names:?}");
    }
    let mut rows: Vec<(&str, &Value)> = ops.iter().map(|(k, v)| (k.as_str(), v)).collect();
    rows.push(("mix", &report["mix"]));
    for (name, op) in rows {
        for field in ["count", "per_sec", "p50_ms", "p95_ms", "p99_ms", "server_errors"] {
            assert!(op[field].is_number(), "{name}.{field}: {op}");
        }
        assert!(op["statuses"].is_object(), "{name}.statuses: {op}");
        let by_status: u64 = op["statuses"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
        assert_eq!(by_status, op["count"].as_u64().unwrap(), "{name}: statuses add up to the count");
    }
    let total: u64 = ops.values().map(|o| o["count"].as_u64().unwrap()).sum();
    assert_eq!(report["mix"]["count"].as_u64(), Some(total), "the mix is the sum of its operations");
    assert!(total > 0);

    // Bookings are the 201s of `book`, and some were made.
    let created = report["bookings"]["created"].as_u64().expect("bookings.created");
    assert_eq!(Some(created), ops["book"]["statuses"]["201"].as_u64().or(Some(0)));
    assert!(created > 0, "bookings were made: {report:#}");

    // No server error, in the mix or the baseline.
    assert_eq!(report["server_errors"], 0, "{report:#}");
    assert_eq!(report["mix"]["server_errors"], 0);

    // The baseline ran on the same client, with its ratios.
    assert_eq!(report["baseline"]["endpoint"], "GET /healthz");
    assert!(report["baseline"]["count"].as_u64().unwrap() > 0);
    assert_eq!(report["baseline"]["statuses"]["200"], report["baseline"]["count"]);
    assert!(report["ratio"]["ops_per_sec_mix_over_baseline"].is_number());
    assert!(report["ratio"]["booking_p99_over_baseline_p99"].is_number());

    // The one process it started, with its memory read from /proc.
    let procs = report["processes"].as_array().expect("processes");
    assert_eq!(procs.len(), 1, "{procs:?}");
    assert_eq!(procs[0]["name"], "samskab");
    assert!(procs[0]["peak_rss_mb"].as_f64().is_some_and(|mb| mb > 0.0), "{procs:?}");
    assert!(procs[0]["max_sampled_rss_mb"].as_f64().is_some_and(|mb| mb > 0.0), "{procs:?}");

    // The targets of issue 8 stand beside the figures.
    let targets = report["targets"].as_array().expect("targets");
    let whats: Vec<&str> = targets.iter().map(|t| t["what"].as_str().unwrap()).collect();
    assert_eq!(
        whats,
        ["bookings/s inside the mix", "booking p99 (SQLite)", "5xx answers", "peak RSS of the all-in-one"]
    );
    assert_eq!(targets[2]["met"], true, "no 5xx");
}

/// `--history`: past rides appended to booking's log are rebuilt by `samskab
/// rebuild-projections` into read models whose stats equal what was generated (the tool
/// fails otherwise), and the all-in-one starts on that history.
#[test]
fn a_short_history_is_rebuilt_into_the_stats_it_was_generated_with() {
    let out = Command::new(LOAD)
        .args(["--history", "15000", "--carehomes", "4", "--homes-per-chapter", "2", "--pilots", "6"])
        .arg("--samskab-bin")
        .arg(samskab())
        .output()
        .expect("samskab-load runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "samskab-load --history failed:\n{stderr}");
    assert!(stderr.contains("stats after the rebuild match the history"), "{stderr}");
    let table = String::from_utf8_lossy(&out.stdout);
    for row in ["events of the logs rebuilt per second", "baseline: one pass reading", "start to `/readyz` 200"] {
        assert!(table.contains(row), "{row} in\n{table}");
    }
    let booking = table.lines().find(|l| l.contains("booking:")).unwrap_or_else(|| panic!("booking line in\n{table}"));
    let events: u64 = booking.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("events rebuilt");
    assert!(events >= 15_000, "{booking}");
}
