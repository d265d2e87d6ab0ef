//! The synthetic world, built over REST before the measurement: chapters, care homes open
//! 06:00-22:00 every day, trishaws, residents with consent, qualified pilots, and tokens.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Args;
use crate::system::System;

/// Ride length of every booking of the mix.
pub const RIDE_MINUTES: i64 = 60;
/// Slots of a day: 06:00 + k × 75 min (a ride and the 15-minute turnaround), k < 12.
pub const SLOTS: u32 = 12;
/// Bookings go this many days ahead at least...
pub const FIRST_DAY: i64 = 30;
/// ... and at most this many.
pub const DAYS: u32 = 700;

/// A care home of the world.
pub struct Home {
    /// Id.
    pub id: Uuid,
    /// Index into `World::chapters`.
    pub chapter: usize,
    /// Trishaws.
    pub bikes: Vec<Uuid>,
    /// Residents with consent.
    pub residents: Vec<Uuid>,
    /// The coordinator's token.
    pub coordinator: String,
}

/// A pilot of the world.
pub struct Pilot {
    /// Id.
    pub id: Uuid,
    /// Index into `World::chapters`.
    pub chapter: usize,
    /// The pilot's token.
    pub token: String,
}

/// A ride the generator booked, and what it may do with it next.
#[derive(Debug, Clone, Copy)]
pub struct Ride {
    /// Id.
    pub id: Uuid,
    /// Index into `World::pilots`.
    pub pilot: usize,
}

/// Slots the generator has used (so that its bookings mostly succeed).
#[derive(Default)]
pub struct Taken {
    bikes: HashSet<(Uuid, u32, u32)>,
    pilots: HashSet<(Uuid, u32, u32)>,
    residents: HashSet<(Uuid, u32, u32)>,
}

/// The world.
pub struct World {
    /// Chapters.
    pub chapters: Vec<Uuid>,
    /// Care homes.
    pub homes: Vec<Home>,
    /// Pilots.
    pub pilots: Vec<Pilot>,
    /// Care homes of each chapter (indices into `homes`).
    pub homes_of: Vec<Vec<usize>>,
    /// The first bookable day (UTC).
    pub day0: NaiveDate,
    /// Rides booked and not yet acted on.
    pub booked: Mutex<Vec<Ride>>,
    /// Rides started and not yet completed.
    pub started: Mutex<Vec<Ride>>,
    /// Every ride booked (for reads).
    pub known: Mutex<Vec<Ride>>,
    /// Used slots.
    pub taken: Mutex<Taken>,
    /// Seconds the world took to build (tokens and warm-up included).
    pub build_secs: f64,
    /// Warm-up bookings made.
    pub warmup_rides: usize,
}

/// One JSON request; `(0, Null)` when it got no answer.
pub async fn call(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    token: &str,
    body: Option<&Value>,
    key: Option<&str>,
) -> (u16, Value) {
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let bytes = r.bytes().await.unwrap_or_default();
            (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// POSTs `body` to `path` and returns the new object's `id` field (201 expected).
pub async fn create(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
    body: Value,
    id: &str,
) -> Result<Uuid, String> {
    let (st, v) = call(http, Method::POST, &format!("{base}{path}"), token, Some(&body), None).await;
    if st != 201 {
        return Err(format!("POST {path}: {st} {v}"));
    }
    v[id].as_str().and_then(|s| s.parse().ok()).ok_or_else(|| format!("POST {path}: no {id} in {v}"))
}

/// A small, fast, seeded random generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

impl World {
    /// A booking body in a slot the generator has not used for this trishaw, pilot or
    /// resident; `None` when 50 tries found none.
    pub fn pick_booking(&self, rng: &mut Rng, pilot: usize) -> Option<Value> {
        let homes = &self.homes_of[self.pilots[pilot].chapter];
        let home = homes[rng.below(homes.len())];
        let residents = &self.homes[home].residents;
        let resident = residents[rng.below(residents.len())];
        self.pick_at(rng, pilot, home, resident)
    }

    /// As `pick_booking`, for a given care home and resident.
    pub fn pick_at(&self, rng: &mut Rng, pilot: usize, home: usize, resident: Uuid) -> Option<Value> {
        let p = &self.pilots[pilot];
        let home = &self.homes[home];
        let bike = home.bikes[rng.below(home.bikes.len())];
        let mut taken = self.taken.lock().expect("taken lock");
        for _ in 0..50 {
            let day = rng.below(DAYS as usize) as u32;
            let slot = rng.below(SLOTS as usize) as u32;
            let k = |id| (id, day, slot);
            if taken.bikes.contains(&k(bike))
                || taken.pilots.contains(&k(p.id))
                || taken.residents.contains(&k(resident))
            {
                continue;
            }
            taken.bikes.insert(k(bike));
            taken.pilots.insert(k(p.id));
            taken.residents.insert(k(resident));
            let date = self.day0 + chrono::Duration::days(day as i64);
            let start = Utc.from_utc_datetime(&date.and_time(NaiveTime::from_hms_opt(6, 0, 0).expect("06:00")))
                + chrono::Duration::minutes(slot as i64 * (RIDE_MINUTES + 15));
            return Some(json!({
                "bike_id": bike, "pilot_id": p.id, "start": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "duration_minutes": RIDE_MINUTES, "resident_ids": [resident],
            }));
        }
        None
    }

    /// Notes a ride the generator booked.
    pub fn booked(&self, ride: Ride) {
        self.booked.lock().expect("lock").push(ride);
        self.known.lock().expect("lock").push(ride);
    }
}

/// Builds the world and waits until booking knows it.
pub async fn build(args: &Args, sys: &System, http: &reqwest::Client) -> Result<Arc<World>, String> {
    let began = Instant::now();
    let base = sys.base.as_str();
    let n_chapters = args.carehomes.div_ceil(args.homes_per_chapter);
    if args.pilots < n_chapters {
        return Err(format!("--pilots must be at least the number of chapters ({n_chapters})"));
    }
    eprintln!(
        "samskab-load: building the world: {n_chapters} chapters, {} care homes × {} trishaws × {} residents, {} pilots",
        args.carehomes, args.bikes_per_home, args.residents_per_home, args.pilots
    );
    let admin = sys.token("admin", None).await?;
    let mut chapters = Vec::new();
    let mut chapter_admins = Vec::new();
    for i in 0..n_chapters {
        let id = create(
            http,
            base,
            "/v1/chapters",
            &admin,
            json!({"name": format!("Load {i}"), "timezone": "UTC"}),
            "chapter_id",
        )
        .await?;
        chapters.push(id);
        chapter_admins.push(sys.token("chapter_admin", Some(("chapter", id))).await?);
    }
    let today = Utc::now().date_naive();
    let limit = Arc::new(tokio::sync::Semaphore::new(8));

    // Pilots, qualified for trishaws over every day the mix books.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.pilots {
        let chapter = i % n_chapters;
        let (http, base, ca, limit) = (http.clone(), base.to_owned(), chapter_admins[chapter].clone(), limit.clone());
        let ch = chapters[chapter];
        let qualification = json!({
            "qualified_on": (today - chrono::Duration::days(365)).to_string(),
            "valid_until": (today + chrono::Duration::days(FIRST_DAY + DAYS as i64 + 60)).to_string(),
        });
        tasks.spawn(async move {
            let _permit = limit.acquire().await.expect("semaphore");
            let body = json!({"chapter_id": ch, "display_name": format!("Pilot {i}"), "email": format!("pilot{i}@load.example.org")});
            let id = create(&http, &base, "/v1/pilots", &ca, body, "pilot_id").await?;
            let path = format!("{base}/v1/pilots/{id}/qualifications");
            let (st, v) = call(&http, Method::POST, &path, &ca, Some(&qualification), None).await;
            if st != 200 {
                return Err(format!("POST /v1/pilots/{id}/qualifications: {st} {v}"));
            }
            Ok::<_, String>((i, id))
        });
    }
    let mut pilot_ids = vec![Uuid::nil(); args.pilots];
    while let Some(r) = tasks.join_next().await {
        let (i, id) = r.map_err(|e| e.to_string())??;
        pilot_ids[i] = id;
    }

    // Care homes with their trishaws and residents.
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let hours: Vec<Value> = days.iter().map(|d| json!({"weekday": d, "opens": "06:00", "closes": "22:00"})).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.carehomes {
        let chapter = i / args.homes_per_chapter;
        let (http, base, ca, limit) = (http.clone(), base.to_owned(), chapter_admins[chapter].clone(), limit.clone());
        let ch = chapters[chapter];
        let hours = hours.clone();
        let (n_bikes, n_residents) = (args.bikes_per_home, args.residents_per_home);
        tasks.spawn(async move {
            let _permit = limit.acquire().await.expect("semaphore");
            let body = json!({
                "chapter_id": ch, "name": format!("Home {i}"), "address": format!("Loadvej {i}"),
                "ride_hours": hours, "turnaround_minutes": 15, "requires_confirmation": false,
                "pilots_choose_riders": true,
            });
            let home = create(&http, &base, "/v1/carehomes", &ca, body, "carehome_id").await?;
            let mut bikes = Vec::new();
            for b in 0..n_bikes {
                let body = json!({"name": format!("Trishaw {i}.{b}"), "seats": 2});
                bikes.push(create(&http, &base, &format!("/v1/carehomes/{home}/bikes"), &ca, body, "bike_id").await?);
            }
            let mut residents = Vec::new();
            for r in 0..n_residents {
                let body = json!({
                    "display_name": format!("Resident {i}.{r}"),
                    "consent": {"given_by": "resident", "given_at": "2026-01-01T10:00:00Z", "scope": ["rides"]},
                });
                residents.push(
                    create(&http, &base, &format!("/v1/carehomes/{home}/residents"), &ca, body, "resident_id").await?,
                );
            }
            Ok::<_, String>((i, chapter, home, bikes, residents))
        });
    }
    let mut homes: Vec<Option<Home>> = (0..args.carehomes).map(|_| None).collect();
    while let Some(r) = tasks.join_next().await {
        let (i, chapter, id, bikes, residents) = r.map_err(|e| e.to_string())??;
        let coordinator = sys.token("coordinator", Some(("carehome", id))).await?;
        homes[i] = Some(Home { id, chapter, bikes, residents, coordinator });
    }
    let homes: Vec<Home> = homes.into_iter().map(|h| h.expect("every home built")).collect();
    let mut pilots = Vec::new();
    for (i, id) in pilot_ids.into_iter().enumerate() {
        pilots.push(Pilot { id, chapter: i % n_chapters, token: sys.token("pilot", Some(("pilot", id))).await? });
    }
    let mut homes_of = vec![Vec::new(); n_chapters];
    for (i, h) in homes.iter().enumerate() {
        homes_of[h.chapter].push(i);
    }
    let world = World {
        chapters,
        homes,
        pilots,
        homes_of,
        day0: today + chrono::Duration::days(FIRST_DAY),
        booked: Default::default(),
        started: Default::default(),
        known: Default::default(),
        taken: Default::default(),
        build_secs: 0.0,
        warmup_rides: 0,
    };

    // Booking knows every trishaw ...
    let until = Instant::now() + Duration::from_secs(60);
    for h in &world.homes {
        let d = world.day0;
        let url = format!(
            "{base}/v1/carehomes/{}/availability?from={d}T00:00:00Z&to={}T00:00:00Z&duration_minutes={RIDE_MINUTES}",
            h.id,
            d + chrono::Duration::days(1)
        );
        loop {
            let (st, v) = call(http, Method::GET, &url, &h.coordinator, None, None).await;
            if st == 200 && v["bikes"].as_array().is_some_and(|b| b.len() == h.bikes.len()) {
                break;
            }
            if Instant::now() > until {
                return Err(format!("booking did not learn the trishaws of care home {}: {st} {v}", h.id));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // ... and every pilot and resident: one warm-up booking each (retried while booking
    // still lacks a qualification or a consent); those rides join the pool.
    let mut rng = Rng::new(args.seed ^ 0x5EED);
    let mut warmups = 0;
    for (c, homes) in world.homes_of.iter().enumerate() {
        let ch_pilots: Vec<usize> = (0..world.pilots.len()).filter(|&p| world.pilots[p].chapter == c).collect();
        let ch_residents: Vec<(usize, Uuid)> =
            homes.iter().flat_map(|&h| world.homes[h].residents.iter().map(move |&r| (h, r))).collect();
        for i in 0..ch_pilots.len().max(ch_residents.len()) {
            let pilot = ch_pilots[i % ch_pilots.len()];
            let (home, resident) = ch_residents[i % ch_residents.len()];
            let url = format!("{base}/v1/rides");
            loop {
                let Some(body) = world.pick_at(&mut rng, pilot, home, resident) else {
                    return Err("no free slot for a warm-up booking".into());
                };
                let (st, v) = call(http, Method::POST, &url, &world.pilots[pilot].token, Some(&body), None).await;
                if st == 201 {
                    let id = v["ride_id"].as_str().and_then(|s| s.parse().ok()).ok_or("no ride_id")?;
                    world.booked(Ride { id, pilot });
                    warmups += 1;
                    break;
                }
                if Instant::now() > until {
                    return Err(format!("a warm-up booking kept failing: {st} {v}"));
                }
                if st != 409 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    let world = World { build_secs: began.elapsed().as_secs_f64(), warmup_rides: warmups, ..world };
    eprintln!("samskab-load: world ready in {:.1}s ({warmups} warm-up bookings)", world.build_secs);
    Ok(Arc::new(world))
}
