//! The system under load: started here (all-in-one or separate processes) or already running;
//! tokens from `samskab token`; memory from `/proc/<pid>/status`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::{Args, Target};

/// One process this generator started.
pub struct Proc {
    /// `samskab`, or the component's name.
    pub name: String,
    /// Its pid.
    pub pid: u32,
    /// Where its stderr goes.
    pub log: PathBuf,
    child: Child,
}

/// Peak memory of one process.
#[derive(Debug, Clone)]
pub struct Memory {
    /// Name.
    pub name: String,
    /// Pid.
    pub pid: u32,
    /// `VmHWM` at the end (the kernel's peak resident set), bytes.
    pub peak_rss: Option<u64>,
    /// The largest `VmRSS` sampled during the run, bytes.
    pub max_sampled_rss: Option<u64>,
}

/// The running system.
pub struct System {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// `all-in-one (SQLite)`, `separate (PostgreSQL)` or `external`.
    pub kind: &'static str,
    /// `sqlite`, `postgres` or `unknown`.
    pub backend: &'static str,
    /// The samskab binary (for tokens).
    pub bin: PathBuf,
    /// The data directory tokens are signed for.
    pub data_dir: PathBuf,
    env: Vec<(String, String)>,
    procs: Vec<Proc>,
    sampled: Arc<Mutex<BTreeMap<u32, u64>>>,
    _temp: Option<tempfile::TempDir>,
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// The samskab binary: `--samskab-bin`, else next to this executable (or its parent, when
/// this is a test executable in `deps/`).
pub fn find_samskab(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return if p.is_file() { Ok(p.to_path_buf()) } else { Err(format!("no samskab binary at {}", p.display())) };
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = me.parent().ok_or("no directory of this executable")?;
    for d in [Some(dir), dir.parent()].into_iter().flatten() {
        let p = d.join("samskab");
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(format!(
        "no samskab binary next to {} (build it: cargo build --release -p samskab, or pass --samskab-bin)",
        me.display()
    ))
}

fn random_hex(bytes: usize) -> String {
    let mut s = String::new();
    while s.len() < bytes * 2 {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(bytes * 2);
    s
}

impl System {
    /// Starts (or finds) the system and waits until `/readyz` answers 200.
    pub async fn start(args: &Args) -> Result<System, String> {
        if let Some(url) = &args.url {
            let data_dir = args.data_dir.clone().ok_or("--url needs --data-dir of that system (for its token keys)")?;
            let bin = find_samskab(args.samskab_bin.as_deref())?;
            let mut sys = System {
                base: url.trim_end_matches('/').to_owned(),
                kind: "external",
                backend: "unknown",
                bin,
                data_dir,
                env: vec![],
                procs: vec![],
                sampled: Default::default(),
                _temp: None,
            };
            sys.wait_ready(&[]).await?;
            return Ok(sys);
        }
        let bin = find_samskab(args.samskab_bin.as_deref())?;
        let (temp, data_dir) = match &args.data_dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
                (None, d.clone())
            }
            None => {
                let t = tempfile::Builder::new().prefix("samskab-load.").tempdir().map_err(|e| e.to_string())?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let mut env = vec![
            // The caller's filter wins (to see statements while profiling).
            ("SAMSKAB_LOG".to_owned(), std::env::var("SAMSKAB_LOG").unwrap_or_else(|_| "warn".to_owned())),
            ("SAMSKAB_RATE_LIMIT_PER_MINUTE".to_owned(), "100000000".to_owned()),
        ];
        let mut sys = System {
            base: String::new(),
            kind: "",
            backend: "",
            bin,
            data_dir,
            env: vec![],
            procs: vec![],
            sampled: Default::default(),
            _temp: temp,
        };
        match args.target {
            Target::AllInOne => {
                sys.kind = "all-in-one";
                sys.backend = "sqlite";
                sys.env = env;
                let data = sys.data_dir.clone();
                // The free port may be taken by another program before samskab binds it
                // (a busy test machine): then try another.
                for attempt in 1.. {
                    let port = free_port()?;
                    sys.base = format!("http://127.0.0.1:{port}");
                    sys.spawn(
                        "samskab",
                        &[
                            "serve".into(),
                            "--data-dir".into(),
                            data.display().to_string(),
                            "--listen".into(),
                            format!("127.0.0.1:{port}"),
                        ],
                    )?;
                    match sys.wait_ready(&[]).await {
                        Err(e) if attempt < 3 && e.contains("Address already in use") => {
                            eprintln!("samskab-load: port {port} was taken; trying another");
                            sys.procs.clear();
                        }
                        other => {
                            other?;
                            break;
                        }
                    }
                }
            }
            Target::Separate => {
                let server =
                    args.database_url.clone().ok_or("--target separate needs --database-url postgres://...")?;
                if !server.starts_with("postgres") {
                    return Err("--database-url must be a postgres:// URL".into());
                }
                // Separate processes share their secrets through the environment.
                env.push(("SAMSKAB_MASTER_KEY".into(), random_hex(32)));
                env.push(("SAMSKAB_JWT_SECRET".into(), format!("k1={}", random_hex(32))));
                env.push(("SAMSKAB_PERSON_KEY".into(), random_hex(32)));
                // Loopback on one machine: the benchmark measures the services, not TLS.
                env.push(("SAMSKAB_INSECURE_PLAINTEXT".into(), "true".into()));
                let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
                let url = |c: &str| {
                    let sep = if server.contains('?') { '&' } else { '?' };
                    format!("{server}{sep}schema=samskab_load_{run}_{c}")
                };
                // One erasure ledger for the three services, on the server too (the default,
                // a SQLite file in the shared data directory, would be migrated by three
                // processes at once).
                env.push(("SAMSKAB_ERASURE_LEDGER_URL".into(), url("ledger")));
                sys.kind = "separate";
                sys.backend = "postgres";
                sys.env = env;
                let [carehome, volunteer, booking, notify, gateway] =
                    [free_port()?, free_port()?, free_port()?, free_port()?, free_port()?];
                let grpc = |p: u16| format!("http://127.0.0.1:{p}");
                let listen = |p: u16| format!("127.0.0.1:{p}");
                let data = sys.data_dir.display().to_string();
                let s = |v: &str| v.to_owned();
                sys.spawn(
                    "carehome",
                    &[
                        s("run"),
                        s("carehome"),
                        s("--database-url"),
                        url("carehome"),
                        s("--listen"),
                        listen(carehome),
                        s("--data-dir"),
                        data.clone(),
                    ],
                )?;
                // One at a time, so that no two processes create the ledger's schema at once.
                sys.wait_port(carehome).await?;
                sys.spawn(
                    "volunteer",
                    &[
                        s("run"),
                        s("volunteer"),
                        s("--database-url"),
                        url("volunteer"),
                        s("--listen"),
                        listen(volunteer),
                        s("--data-dir"),
                        data.clone(),
                    ],
                )?;
                sys.wait_port(volunteer).await?;
                sys.spawn(
                    "booking",
                    &[
                        s("run"),
                        s("booking"),
                        s("--database-url"),
                        url("booking"),
                        s("--listen"),
                        listen(booking),
                        s("--carehome-url"),
                        grpc(carehome),
                        s("--volunteer-url"),
                        grpc(volunteer),
                        s("--data-dir"),
                        data.clone(),
                    ],
                )?;
                sys.wait_port(booking).await?;
                // Notify, so that the separate target tells reminders as the all-in-one does.
                sys.spawn(
                    "notify",
                    &[
                        s("run"),
                        s("notify"),
                        s("--database-url"),
                        url("notify"),
                        s("--listen"),
                        listen(notify),
                        s("--carehome-url"),
                        grpc(carehome),
                        s("--booking-url"),
                        grpc(booking),
                        s("--volunteer-url"),
                        grpc(volunteer),
                        s("--data-dir"),
                        data.clone(),
                    ],
                )?;
                sys.wait_port(notify).await?;
                sys.spawn(
                    "gateway",
                    &[
                        s("run"),
                        s("gateway"),
                        s("--database-url"),
                        url("gateway"),
                        s("--listen"),
                        listen(gateway),
                        s("--booking-url"),
                        grpc(booking),
                        s("--carehome-url"),
                        grpc(carehome),
                        s("--volunteer-url"),
                        grpc(volunteer),
                        s("--notify-url"),
                        grpc(notify),
                        s("--data-dir"),
                        data,
                    ],
                )?;
                sys.base = format!("http://127.0.0.1:{gateway}");
            }
        }
        eprintln!(
            "samskab-load: started {} ({}) at {}, data in {}",
            sys.kind,
            sys.backend,
            sys.base,
            sys.data_dir.display()
        );
        let logs: Vec<PathBuf> = sys.procs.iter().map(|p| p.log.clone()).collect();
        sys.wait_ready(&logs).await?;
        Ok(sys)
    }

    fn spawn(&mut self, name: &str, args: &[String]) -> Result<(), String> {
        let log = self.data_dir.join(format!("{name}.stderr.log"));
        let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = Command::new(&self.bin)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{} {}: {e}", self.bin.display(), args.join(" ")))?;
        let pid = child.id().ok_or("the process exited at once")?;
        self.procs.push(Proc { name: name.to_owned(), pid, log, child });
        Ok(())
    }

    /// Waits until the last started process listens on `port`.
    async fn wait_port(&self, port: u16) -> Result<(), String> {
        let until = Instant::now() + Duration::from_secs(120);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if Instant::now() > until {
                let log = self.procs.last().map(|p| p.log.display().to_string()).unwrap_or_default();
                return Err(format!("nothing listens on port {port} after 120 s (see {log})"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    pub async fn wait_ready(&mut self, logs: &[PathBuf]) -> Result<(), String> {
        let http = reqwest::Client::new();
        let until = Instant::now() + Duration::from_secs(180);
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", self.base)).send().await
                && r.status() == 200
            {
                return Ok(());
            }
            // A process that exited (its port taken meanwhile by another program) will
            // never answer: say so now, with its log.
            let exited = self.procs.iter_mut().find_map(|p| match p.child.try_wait() {
                Ok(Some(status)) => Some((p.name.clone(), status, p.log.clone())),
                _ => None,
            });
            if let Some((name, status, log)) = exited {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
                return Err(format!("{name} exited ({status}) before it was ready:\n{tail}"));
            }
            if Instant::now() > until {
                let tails: Vec<String> = logs
                    .iter()
                    .map(|l| {
                        let text = std::fs::read_to_string(l).unwrap_or_default();
                        let tail: Vec<&str> = text.lines().rev().take(20).collect();
                        format!("{}:\n{}", l.display(), tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
                    })
                    .collect();
                return Err(format!("{}/readyz did not answer 200 within 180 s\n{}", self.base, tails.join("\n")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A signed token (`samskab token --role ROLE [--chapter|--carehome|--pilot ID]`).
    pub async fn token(&self, role: &str, scope: Option<(&str, uuid::Uuid)>) -> Result<String, String> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("token").arg("--role").arg(role).arg("--data-dir").arg(&self.data_dir);
        if let Some((flag, id)) = scope {
            cmd.arg(format!("--{flag}")).arg(id.to_string());
        }
        let out = cmd
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("samskab token --role {role}: {}", String::from_utf8_lossy(&out.stderr)));
        }
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .last()
            .map(str::to_owned)
            .ok_or_else(|| "samskab token printed nothing".into())
    }

    /// Samples `VmRSS` of every started process every 200 ms, keeping the largest.
    pub fn sample_rss(&self) -> tokio::task::JoinHandle<()> {
        let pids: Vec<u32> = self.procs.iter().map(|p| p.pid).collect();
        let sampled = self.sampled.clone();
        tokio::spawn(async move {
            loop {
                for &pid in &pids {
                    if let Some(rss) = status_kb(pid, "VmRSS:") {
                        let mut m = sampled.lock().expect("sampler lock");
                        let e = m.entry(pid).or_default();
                        *e = (*e).max(rss * 1024);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    }

    /// Peak memory of every started process (read while they still run).
    pub fn memory(&self) -> Vec<Memory> {
        let sampled = self.sampled.lock().expect("sampler lock").clone();
        self.procs
            .iter()
            .map(|p| Memory {
                name: p.name.clone(),
                pid: p.pid,
                peak_rss: status_kb(p.pid, "VmHWM:").map(|kb| kb * 1024),
                max_sampled_rss: sampled.get(&p.pid).copied(),
            })
            .collect()
    }

    /// Starts `samskab serve` again on the same data directory and port (after `stop` and
    /// `forget_processes`); returns when it was spawned.
    pub fn serve_again(&mut self) -> Result<Instant, String> {
        let port = self.base.rsplit(':').next().unwrap_or_default().to_owned();
        let data = self.data_dir.display().to_string();
        let began = Instant::now();
        self.spawn(
            "samskab",
            &["serve".into(), "--data-dir".into(), data, "--listen".into(), format!("127.0.0.1:{port}")],
        )?;
        Ok(began)
    }

    /// Forgets stopped processes.
    pub fn forget_processes(&mut self) {
        self.procs.clear();
    }

    /// Stops the started processes: SIGTERM (they drain), then SIGKILL after 20 s.
    pub async fn stop(&mut self) {
        for p in self.procs.iter().rev() {
            let _ = std::process::Command::new("kill").args(["-TERM", &p.pid.to_string()]).status();
        }
        for p in self.procs.iter_mut().rev() {
            if tokio::time::timeout(Duration::from_secs(20), p.child.wait()).await.is_err() {
                let _ = p.child.kill().await;
            }
        }
    }
}

/// A `kB` field of `/proc/<pid>/status`.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}
