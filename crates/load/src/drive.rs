//! The measured phases: the baseline (GET /healthz) and the mix.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::world::{Ride, Rng, World};

/// What one operation saw.
#[derive(Debug, Default, Clone)]
pub struct OpStats {
    /// Latency of every answered or failed request, microseconds.
    pub latencies_us: Vec<u64>,
    /// Answers per status (0: no answer: connection error or timeout).
    pub statuses: BTreeMap<u16, u64>,
}

impl OpStats {
    fn record(&mut self, status: u16, took: Duration) {
        self.latencies_us.push(took.as_micros() as u64);
        *self.statuses.entry(status).or_default() += 1;
    }

    fn merge(&mut self, other: OpStats) {
        self.latencies_us.extend(other.latencies_us);
        for (s, n) in other.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
    }

    /// Requests.
    pub fn count(&self) -> u64 {
        self.latencies_us.len() as u64
    }

    /// Answers with this status.
    pub fn with_status(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    /// Answers 500-599.
    pub fn server_errors(&self) -> u64 {
        self.statuses.iter().filter(|(s, _)| (500..600).contains(*s)).map(|(_, n)| n).sum()
    }

    /// The `p`-quantile latency (0 < p ≤ 1), milliseconds; sorts in place.
    pub fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.latencies_us.sort_unstable();
        let n = self.latencies_us.len();
        let i = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
        self.latencies_us[i] as f64 / 1000.0
    }
}

/// One measured phase.
#[derive(Debug, Default, Clone)]
pub struct Phase {
    /// Seconds it ran (wall time, first request to last answer).
    pub secs: f64,
    /// Per operation.
    pub ops: BTreeMap<&'static str, OpStats>,
}

impl Phase {
    /// Every operation together.
    pub fn total(&self) -> OpStats {
        let mut all = OpStats::default();
        for s in self.ops.values() {
            all.merge(s.clone());
        }
        all
    }
}

async fn timed(req: reqwest::RequestBuilder) -> (u16, Duration, Vec<u8>) {
    let began = Instant::now();
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let body = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
            (status, began.elapsed(), body)
        }
        Err(_) => (0, began.elapsed(), Vec::new()),
    }
}

/// The baseline: `concurrency` clients doing `GET /healthz` for `secs` seconds.
pub async fn baseline(http: &reqwest::Client, base: &str, concurrency: usize, secs: f64) -> Phase {
    let began = Instant::now();
    let until = began + Duration::from_secs_f64(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (http, url) = (http.clone(), format!("{base}/healthz"));
        tasks.spawn(async move {
            let mut s = OpStats::default();
            while Instant::now() < until {
                let (status, took, _) = timed(http.get(&url)).await;
                s.record(status, took);
            }
            s
        });
    }
    let mut phase = Phase::default();
    let mut all = OpStats::default();
    while let Some(Ok(s)) = tasks.join_next().await {
        all.merge(s);
    }
    phase.secs = began.elapsed().as_secs_f64();
    phase.ops.insert("healthz", all);
    phase
}

/// One operation of the mix alone (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    /// `POST /v1/rides`.
    Book,
    /// `GET /v1/rides/{id}`.
    GetRide,
    /// `GET /v1/rides?pilot_id=`.
    ListRides,
    /// `GET /v1/carehomes/{id}/availability`.
    Availability,
}

impl Only {
    /// The roll of the mix's dice that picks this operation.
    fn roll(self) -> usize {
        match self {
            Only::Book => 75,
            Only::GetRide => 60,
            Only::ListRides => 45,
            Only::Availability => 0,
        }
    }
}

/// The mix: `concurrency` clients for `secs` seconds (`only`: one operation alone).
pub async fn mix(
    http: &reqwest::Client,
    base: &str,
    world: &Arc<World>,
    concurrency: usize,
    secs: f64,
    seed: u64,
    only: Option<Only>,
) -> Phase {
    let began = Instant::now();
    let until = began + Duration::from_secs_f64(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let (http, base, world) = (http.clone(), base.to_owned(), world.clone());
        tasks.spawn(async move {
            let mut rng = Rng::new(seed.wrapping_add(1 + w as u64));
            let mut ops: BTreeMap<&'static str, OpStats> = BTreeMap::new();
            while Instant::now() < until {
                one(&http, &base, &world, &mut rng, only, &mut ops).await;
            }
            ops
        });
    }
    let mut phase = Phase::default();
    while let Some(Ok(ops)) = tasks.join_next().await {
        for (name, s) in ops {
            phase.ops.entry(name).or_default().merge(s);
        }
    }
    phase.secs = began.elapsed().as_secs_f64();
    phase
}

fn pop(pool: &std::sync::Mutex<Vec<Ride>>, rng: &mut Rng) -> Option<Ride> {
    let mut v = pool.lock().expect("pool lock");
    if v.is_empty() {
        return None;
    }
    let i = rng.below(v.len());
    Some(v.swap_remove(i))
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

/// One operation of the mix, chosen at random.
async fn one(
    http: &reqwest::Client,
    base: &str,
    world: &World,
    rng: &mut Rng,
    only: Option<Only>,
    ops: &mut BTreeMap<&'static str, OpStats>,
) {
    let roll = rng.below(100);
    let roll = only.map_or(roll, Only::roll);
    let pilot = rng.below(world.pilots.len());
    let token = world.pilots[pilot].token.as_str();
    let key = || uuid::Uuid::new_v4().to_string();
    // 10%: act on a ride it booked (cancel, start, complete).
    if roll >= 90 {
        let started = if rng.below(2) == 0 { pop(&world.started, rng) } else { None };
        if let Some(ride) = started {
            let body = json!({
                "ended_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "distance_km": 4.5, "bike_condition": "ok",
            });
            let req = http
                .post(format!("{base}/v1/rides/{}/complete", ride.id))
                .bearer_auth(&world.pilots[ride.pilot].token)
                .header("idempotency-key", key())
                .json(&body);
            let (status, took, _) = timed(req).await;
            ops.entry("complete").or_default().record(status, took);
            return;
        }
        if let Some(ride) = pop(&world.booked, rng) {
            let t = &world.pilots[ride.pilot].token;
            if rng.below(2) == 0 {
                let req = http
                    .post(format!("{base}/v1/rides/{}/cancel", ride.id))
                    .bearer_auth(t)
                    .header("idempotency-key", key())
                    .json(&json!({"reason": "rider"}));
                let (status, took, _) = timed(req).await;
                ops.entry("cancel").or_default().record(status, took);
            } else {
                let req = http
                    .post(format!("{base}/v1/rides/{}/start", ride.id))
                    .bearer_auth(t)
                    .header("idempotency-key", key());
                let (status, took, _) = timed(req).await;
                ops.entry("start").or_default().record(status, took);
                if status == 200 {
                    world.started.lock().expect("lock").push(ride);
                }
            }
            return;
        }
        // Nothing to act on yet: book instead.
    }
    // 20%: book (only 201s count as bookings).
    if roll >= 70 {
        let Some(body) = world.pick_booking(rng, pilot) else { return };
        let req = http.post(format!("{base}/v1/rides")).bearer_auth(token).header("idempotency-key", key()).json(&body);
        let (status, took, resp) = timed(req).await;
        ops.entry("book").or_default().record(status, took);
        if status == 201
            && let Some(id) = json_of(&resp)["ride_id"].as_str().and_then(|s| s.parse().ok())
        {
            world.booked(Ride { id, pilot });
        }
        return;
    }
    // 15%: a ride the generator booked, by its pilot.
    if roll >= 55 {
        let ride = {
            let known = world.known.lock().expect("lock");
            (!known.is_empty()).then(|| known[rng.below(known.len())])
        };
        if let Some(ride) = ride {
            let req = http.get(format!("{base}/v1/rides/{}", ride.id)).bearer_auth(&world.pilots[ride.pilot].token);
            let (status, took, _) = timed(req).await;
            ops.entry("get_ride").or_default().record(status, took);
            return;
        }
    }
    // 15%: a pilot's rides.
    if roll >= 40 {
        let id = world.pilots[pilot].id;
        let req = http.get(format!("{base}/v1/rides?pilot_id={id}&limit=50")).bearer_auth(token);
        let (status, took, _) = timed(req).await;
        ops.entry("list_rides").or_default().record(status, took);
        return;
    }
    // 40%: one day's availability at a care home of the pilot's chapter.
    let homes = &world.homes_of[world.pilots[pilot].chapter];
    let home = world.homes[homes[rng.below(homes.len())]].id;
    let day = world.day0 + chrono::Duration::days(rng.below(crate::world::DAYS as usize) as i64);
    let next = day + chrono::Duration::days(1);
    let req = http
        .get(format!(
            "{base}/v1/carehomes/{home}/availability?from={day}T00:00:00Z&to={next}T00:00:00Z&duration_minutes={}",
            crate::world::RIDE_MINUTES
        ))
        .bearer_auth(token);
    let (status, took, _) = timed(req).await;
    ops.entry("availability").or_default().record(status, took);
}
