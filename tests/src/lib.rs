//! The end-to-end harness: starts the real system (the `samskab` all-in-one: three gRPC
//! services and the gateway) on a free port, on SQLite files in a temporary data directory
//! or on schemas of the test PostgreSQL server, and drives it over HTTP only. Helpers make
//! tokens and the objects most tests need.

use std::time::Duration;

use gateway::{Claims, Keys, Role};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::TestDb;
use uuid::Uuid;

/// A running system and an HTTP client for it.
pub struct System {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The HTTP client.
    pub http: reqwest::Client,
    /// The configuration it runs with (restart uses it again).
    pub config: samskab::ServeConfig,
    running: Option<samskab::Running>,
    /// The databases (dropped with the system).
    pub db: TestDb,
}

/// An answer: status, headers, JSON body (`Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body.
    pub body: Value,
}

impl Reply {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    /// The problem's `code`.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// A string field of the body.
    pub fn str(&self, field: &str) -> String {
        self.body[field].as_str().unwrap_or_default().to_owned()
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(self.status.as_u16(), status, "unexpected answer: {}", self.body);
        self
    }
}

/// Sends a request and reads its answer (the body as JSON, `Null` when empty or not JSON).
async fn answer(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.expect("the request is answered");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, headers, body }
}

/// Which backend a system runs on.
pub fn backends() -> Vec<TestDb> {
    testkit::all_backends()
}

impl System {
    /// Starts a system on `db` (SQLite files in its directory, or schemas in PostgreSQL).
    pub async fn start(db: TestDb) -> System {
        Self::start_with(db, |_| {}).await
    }

    /// Starts a system after `tune` adjusted its configuration (rate limit, timeouts...).
    pub async fn start_with(db: TestDb, tune: impl FnOnce(&mut samskab::ServeConfig)) -> System {
        // Logging and tracing as the binary installs them (once per test process).
        static TELEMETRY: std::sync::Once = std::sync::Once::new();
        TELEMETRY.call_once(|| std::mem::forget(telemetry::init("samskab-e2e")));
        let data_dir = tempfile::tempdir().expect("data dir").keep();
        let database_url = match db.backend {
            testkit::Backend::Postgres => Some(db.url.clone()),
            testkit::Backend::Sqlite => None,
        };
        // A directory of its own inside the temporary one, so that the key directory beside
        // it (`data.keys`) is inside it too.
        let dir = match db.backend {
            testkit::Backend::Sqlite => db.dir(),
            testkit::Backend::Postgres => data_dir,
        }
        .join("data");
        let config = samskab::ServeConfig {
            listen: "127.0.0.1:0".parse().expect("address"),
            database_url,
            http: gateway::HttpConfig {
                rate_limit_per_minute: 100_000,
                cors_origins: vec!["https://app.example.org".into()],
                request_timeout_secs: 30,
                scope_cache_ms: 2000,
                local_tokens: None,
                oidc: Default::default(),
                webhooks: Default::default(),
                trusted_proxies: Vec::new(),
                ..Default::default()
            },
            keys: servicekit::bootstrap::KeyConfig {
                data_dir: dir,
                erasure_ledger_url: None,
                generate: true,
                key_file: None,
            },
            mail: Default::default(),
            sms: Default::default(),
            // The test push services listen on loopback.
            push: notify::push::PushConfig { allow_loopback: true, ..Default::default() },
        };
        let mut config = config;
        tune(&mut config);
        Self::run(config, db).await
    }

    async fn run(config: samskab::ServeConfig, db: TestDb) -> System {
        let running = samskab::start(&config).await.expect("the system starts");
        let base = format!("http://{}", running.addr);
        // No idle connection kept: the gateway's connection limit is then exact for tests
        // that measure it.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        System { base, http, config, running: Some(running), db }
    }

    /// Stops the system and starts it again on the same data (a restart in the middle).
    pub async fn restart(mut self) -> System {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        let System { mut config, db, base, .. } = self;
        config.listen = base.trim_start_matches("http://").parse().expect("address");
        Self::run(config, db).await
    }

    /// A token for a role (signed with the system's keys).
    pub fn token(&self, role: Role) -> String {
        let keys = Keys::from_env_or_data_dir(self.config.data_dir()).expect("keys");
        let sub = format!("u-{}-{}", role.name(), Uuid::new_v4().simple());
        keys.sign(&Claims::new(&sub, role, chrono::Duration::hours(1)))
    }

    /// Starts a second gateway on the same database and services (another replica, with
    /// caches of its own), and returns its base URL; it stops with the test.
    pub async fn second_gateway(&self) -> String {
        let running = self.running.as_ref().expect("running");
        let store = eventlog::EventStore::connect(&self.config.url("gateway")).await.expect("gateway store");
        let keys_store = servicekit::bootstrap::key_store(&store, &self.config.key_config("gateway", false))
            .await
            .expect("key store");
        let keys = Keys::from_env_or_data_dir(self.config.data_dir()).expect("keys");
        let clients = running.gateway.clients.clone();
        let state = gateway::state(store, keys_store, keys, clients, &self.config.http).await.expect("gateway state");
        let app = gateway::app(state, &self.config.http);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await;
        });
        format!("http://{addr}")
    }

    /// A request to another base URL (a second gateway).
    pub async fn call_at(&self, base: &str, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
        let mut req = self.http.request(method, format!("{base}{path}")).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("the request is answered");
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = resp.bytes().await.unwrap_or_default();
        Reply { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    /// The person a Samskab token with subject `sub` acts for (the audit's actor).
    pub fn person_of(&self, sub: &str) -> String {
        let keys = Keys::from_env_or_data_dir(self.config.data_dir()).expect("keys");
        keys.person_id(gateway::auth::ISSUER, sub).to_string()
    }

    /// The admin's token.
    pub fn admin(&self) -> String {
        self.token(Role::Admin)
    }

    /// Any request; `body` is sent as JSON when given.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        self.call_with(method, path, token, body, &[]).await
    }

    /// A request with extra headers.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req).await
    }

    /// GET.
    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// PUT with a JSON body.
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    /// A request whose body is sent as it is, with its own `Content-Type`.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: &str,
        content_type: &str,
        body: String,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        answer(req).await
    }

    /// PATCH with a JSON merge patch (RFC 7396) and, when given, `If-Match`.
    pub async fn patch(&self, path: &str, token: &str, if_match: Option<&str>, body: Value) -> Reply {
        let headers: Vec<(&str, &str)> = if_match.map(|v| ("if-match", v)).into_iter().collect();
        self.send_raw(Method::PATCH, path, token, "application/merge-patch+json", body.to_string(), &headers).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// The heads of the three services' event logs, to show that a refused request wrote
    /// nothing: compare before and after.
    pub async fn heads(&self) -> Vec<String> {
        let mut heads = Vec::new();
        for component in ["carehome", "volunteer", "booking"] {
            let store = eventlog::EventStore::connect(&self.config.url(component)).await.expect("the store opens");
            heads.push(format!("{component}: {}", store.head().await.expect("head")));
            store.close().await;
        }
        heads
    }

    /// Waits until `check` holds (lists and cross-service facts lag a moment): the e2e
    /// spelling of [`testkit::eventually`] with its default timeout.
    pub async fn eventually<F, Fut>(&self, what: &str, check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        testkit::eventually(what, testkit::DEFAULT_TIMEOUT, check).await
    }

    /// Waits until the system stands still: booking has applied every event of the
    /// care-home and volunteer logs (its followers' checkpoints, in booking's database,
    /// reached those logs' last committed events) and worked the cascades they started (no
    /// first-pass row left in its outbox), and every committed event is readable (on
    /// PostgreSQL the head lags while a transaction is open anywhere in the cluster).
    /// Nothing moves then until the next request: returns the three logs' heads, as
    /// [`System::heads`] shows them.
    pub async fn quiet(&self) -> Vec<String> {
        let open = |component: &'static str| {
            let url = self.config.url(component);
            async move { (component, eventlog::EventStore::connect(&url).await.expect("the store opens")) }
        };
        let logs = [open("carehome").await, open("volunteer").await, open("booking").await];
        let [(_, carehome), (_, volunteer), (_, booking)] = &logs;
        let followers = [
            ("booking_facts_carehome", carehome, carehome::access::INTERNAL),
            ("booking_facts_volunteer", volunteer, volunteer::access::INTERNAL),
        ];
        let heads = testkit::eventually("the system to stand still", testkit::DEFAULT_TIMEOUT, || async {
            let err = |e: eventlog::Error| e.to_string();
            for (follower, peer, internal) in followers {
                let last = peer.last_committed().await.map_err(err)?;
                let checkpoint = booking.load_checkpoint(follower).await.map_err(err)?;
                let applied = checkpoint.as_deref().and_then(|c| c.parse::<eventlog::Cursor>().ok());
                if last != eventlog::Cursor::START && applied.is_none_or(|c| c < last) {
                    // The feed leaves out the peer's internal events (who may sign in as
                    // whom): a follower never sees them, so only public events count.
                    let after = applied.unwrap_or(eventlog::Cursor::START);
                    let page = peer.read_all(after, &eventlog::Filter::all(), 1000).await.map_err(err)?;
                    let public = page.events.iter().any(|e| !internal.contains(&e.event_type.as_str()));
                    if public || page.events.last().is_none_or(|e| e.cursor < last) {
                        return Err(format!("{follower} at {checkpoint:?}, its peer's last event at {last}"));
                    }
                }
            }
            let due = booking.fetch_i64("SELECT COUNT(*) FROM booking_outbox WHERE pass = 0", &[]).await;
            match due.map_err(err)?.unwrap_or(0) {
                0 => {}
                n => return Err(format!("{n} cascades not yet worked")),
            }
            let mut heads = Vec::new();
            for (component, store) in &logs {
                let (head, last) = (store.head().await.map_err(err)?, store.last_committed().await.map_err(err)?);
                if head != last {
                    return Err(format!("{component}: head {head}, last committed {last}"));
                }
                heads.push(format!("{component}: {head}"));
            }
            Ok(heads)
        })
        .await;
        for (_, store) in &logs {
            store.close().await;
        }
        heads
    }
}

/// A chapter with a care home (ride hours 09-17 every day, turnaround 15), a two-seat
/// trishaw, a qualified pilot and two residents with consent, created over HTTP.
pub struct World {
    /// Chapter.
    pub chapter: Uuid,
    /// Care home.
    pub home: Uuid,
    /// Trishaw.
    pub bike: Uuid,
    /// Pilot.
    pub pilot: Uuid,
    /// Residents.
    pub residents: Vec<Uuid>,
}

fn id(r: &Reply, field: &str) -> Uuid {
    r.body[field].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no {field} in {}", r.body))
}

impl System {
    /// Creates a chapter as admin.
    pub async fn chapter(&self) -> Uuid {
        let r = self
            .post("/v1/chapters", &self.admin(), json!({"name": "Aarhus", "timezone": "Europe/Copenhagen"}))
            .await
            .expect(201);
        id(&r, "chapter_id")
    }

    /// Creates a care home as the chapter's admin; its pilots choose their riders (the
    /// suites book residents as pilots; `tests/tests/api/riders.rs` covers a home that
    /// does not let them).
    pub async fn carehome(&self, chapter: Uuid) -> Uuid {
        self.carehome_where(chapter, true).await
    }

    /// Creates a care home as the chapter's admin, saying whether pilots choose riders.
    pub async fn carehome_where(&self, chapter: Uuid, pilots_choose_riders: bool) -> Uuid {
        let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
        let body = json!({
            "chapter_id": chapter, "name": "Lindehuset", "address": "Lindevej 1, Aarhus",
            "ride_hours": days.iter().map(|d| json!({"weekday": d, "opens": "09:00", "closes": "17:00"})).collect::<Vec<_>>(),
            "turnaround_minutes": 15, "requires_confirmation": false,
            "pilots_choose_riders": pilots_choose_riders,
        });
        let r = self.post("/v1/carehomes", &self.token(Role::ChapterAdmin(chapter)), body).await.expect(201);
        id(&r, "carehome_id")
    }

    /// Commissions a trishaw as the chapter's admin.
    pub async fn bike(&self, chapter: Uuid, home: Uuid, seats: u32) -> Uuid {
        let r = self
            .post(
                &format!("/v1/carehomes/{home}/bikes"),
                &self.token(Role::ChapterAdmin(chapter)),
                json!({"name": "Trishaw", "seats": seats}),
            )
            .await
            .expect(201);
        id(&r, "bike_id")
    }

    /// Admits a resident with consent to rides and stories, as the home's coordinator.
    pub async fn resident(&self, home: Uuid) -> Uuid {
        let body = json!({
            "display_name": "Ærø Østergård", "notes": "loves the harbour",
            "consent": {"given_by": "relative", "given_at": "2026-11-01T10:00:00Z", "scope": ["rides", "stories"]},
        });
        let r = self
            .post(&format!("/v1/carehomes/{home}/residents"), &self.token(Role::Coordinator(home)), body)
            .await
            .expect(201);
        id(&r, "resident_id")
    }

    /// Registers a pilot qualified for trishaws through 2028, as the chapter's admin.
    pub async fn pilot(&self, chapter: Uuid) -> Uuid {
        let admin = self.token(Role::ChapterAdmin(chapter));
        let r = self
            .post("/v1/pilots", &admin, json!({"chapter_id": chapter, "display_name": "Pilot", "email": format!("p{}@example.org", Uuid::new_v4().simple())}))
            .await
            .expect(201);
        let pilot = id(&r, "pilot_id");
        self.post(
            &format!("/v1/pilots/{pilot}/qualifications"),
            &admin,
            json!({"qualified_on": "2026-01-01", "valid_until": "2028-12-31"}),
        )
        .await
        .expect(200);
        pilot
    }

    /// A whole world, and waits until booking knows of it.
    pub async fn world(&self) -> World {
        let chapter = self.chapter().await;
        let home = self.carehome(chapter).await;
        let bike = self.bike(chapter, home, 2).await;
        let pilot = self.pilot(chapter).await;
        let residents = vec![self.resident(home).await, self.resident(home).await];
        let w = World { chapter, home, bike, pilot, residents };
        self.settle(&w).await;
        w
    }

    /// Waits until booking has heard of the world's trishaw, pilot and residents: their
    /// availability answers and a booking check passes.
    pub async fn settle(&self, w: &World) {
        let token = self.token(Role::ChapterAdmin(w.chapter));
        let path = format!(
            "/v1/carehomes/{}/availability?from=2027-05-03T00:00:00Z&to=2027-05-04T00:00:00Z&duration_minutes=30",
            w.home
        );
        self.eventually("booking to learn the world", || {
            let (path, token) = (path.clone(), token.clone());
            async move {
                let r = self.get(&path, &token).await;
                r.status == StatusCode::OK && r.body["bikes"].as_array().is_some_and(|b| !b.is_empty())
            }
        })
        .await;
        // Pilots and residents travel on other feeds (a dry booking would write): wait
        // until booking has applied them.
        self.quiet().await;
    }
}
