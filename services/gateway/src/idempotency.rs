//! Idempotency of `POST`s: a key is scoped to the caller and the route (method and path),
//! kept at least 24 h in the gateway's database, and travels into the command, where the
//! events' ids derive from it. A repeat with the same body gets the original status and
//! body (errors other than 5xx included); another body with the same key is 422
//! `idempotency-key-reused`; a repeat while the first still runs is 409
//! `idempotency-in-flight`. A request whose gateway died mid-way (the row stays "in
//! flight") may be retried after a short while: the service finds its original outcome
//! by the event ids. A request that ended without recording its answer (the database was
//! down) leaves an orphaned claim that a retry reaching the same gateway process takes
//! over at once (claims name the process; the process knows which requests it runs);
//! another gateway replica waits for the lease. Stored responses are sealed with a
//! per-caller key.
//!
//! Claims and answers are relaxed commits (no wait for the disk; issue 22): the booking's
//! one durable commit is the service's append. A killed gateway loses none of them; a
//! power loss may lose the last ones, and then a retry runs again and the service finds
//! the original outcome by the derived event ids, as after a crash between commit and
//! answer. (A refusal that wrote nothing may then be decided again on today's state.)
//! Erasures' deletions stay durable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use eventlog::{Arg, EventStore};
use keystore::KeyStore;
use serde::{Deserialize, Serialize};
use servicekit::ErrorCode;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::auth::Role;
use crate::extract::MAX_BODY;
use crate::problem::ApiError;

/// How long keys are kept.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// After this long an in-flight request is presumed dead and may be retried (on
/// PostgreSQL, where several gateways may share the table; it exceeds the default
/// request timeout, after which no request is still running).
pub const STALE: Duration = Duration::from_secs(40);

/// The store of keys and responses.
#[derive(Clone)]
pub struct Idempotency {
    store: EventStore,
    keys: KeyStore,
    /// This process's id in the `owner` column of its claims.
    instance: String,
    /// Scopes whose requests this process is running now (with how many claim attempts
    /// hold each).
    running: Arc<Mutex<HashMap<String, usize>>>,
}

/// Marks a scope as running in this process until dropped (also when the request's
/// future is dropped half-way): a claim of this process whose scope is not running is
/// an orphan that a retry may take over at once.
struct Running {
    scope: String,
    running: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = running.get_mut(&self.scope) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.scope);
            }
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// A key's row as a claim reads it: `status` 0 while in flight, then the answer's status
/// with its sealed `response`; `owner` is the gateway process that claimed it.
#[derive(sqlx::FromRow)]
struct ClaimRow {
    request_hash: String,
    status: i64,
    updated_at: i64,
    owner: String,
    response: String,
}

const KEPT_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::ETAG];

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Idempotency {
    /// Over the gateway's database (its migrations applied by the caller).
    pub fn new(store: EventStore, keys: KeyStore) -> Self {
        Idempotency {
            store,
            keys,
            instance: uuid::Uuid::new_v4().to_string(),
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn run(&self, scope: &str) -> Running {
        *self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(scope.to_owned()).or_default() +=
            1;
        Running { scope: scope.to_owned(), running: self.running.clone() }
    }

    fn is_running(&self, scope: &str) -> bool {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(scope)
    }

    /// At start, on SQLite, releases keys left in flight by a gateway that died between
    /// claiming a key and storing its answer: an embedded SQLite database belongs to one
    /// process, so such rows can only be orphans, and the client's retry should run (the
    /// service then finds the original outcome by the derived event ids) rather than wait
    /// for the lease. On PostgreSQL other gateway replicas may be running those requests,
    /// so orphans there wait for the [`STALE`] lease instead.
    pub async fn release_orphans(&self) -> Result<u64, eventlog::Error> {
        if self.store.backend() != eventlog::Backend::Sqlite {
            return Ok(0);
        }
        let released = self
            .store
            .transaction(|tx| {
                Box::pin(async move { tx.execute("DELETE FROM gateway_idempotency WHERE status = 0", &[]).await })
            })
            .await?;
        if released > 0 {
            tracing::info!(released, "released idempotency keys left in flight by a previous run");
        }
        Ok(released)
    }

    /// Removes keys older than the retention; returns how many.
    pub async fn expire(&self) -> Result<u64, eventlog::Error> {
        let before = now() - RETENTION.as_secs() as i64;
        self.store
            .transaction(move |tx| {
                Box::pin(async move {
                    tx.execute("DELETE FROM gateway_idempotency WHERE created_at < $1", &[Arg::Int(before)]).await
                })
            })
            .await
    }

    /// Claims `scope` for a request whose body has the keyed digest `hash`; `legacy` is the
    /// bare hash older gateways stored, accepted from rows that hold one (for the day such
    /// rows are kept after an upgrade).
    async fn claim(&self, scope: &str, hash: &str, legacy: Option<&str>) -> Result<Claim, ApiError> {
        // A row that vanished between the insert and the read was released (its request
        // got a 5xx): claim again.
        for _ in 0..3 {
            if let Some(claim) = self.try_claim(scope, hash, legacy).await? {
                return Ok(claim);
            }
        }
        Err(ApiError::new(ErrorCode::IdempotencyInFlight))
    }

    async fn try_claim(&self, scope: &str, hash: &str, legacy: Option<&str>) -> Result<Option<Claim>, ApiError> {
        // Marked running before the claim is visible, so that no concurrent retry in this
        // process takes it for an orphan.
        let running = self.run(scope);
        let (s, h, t, me) = (scope.to_owned(), hash.to_owned(), now(), self.instance.clone());
        let inserted = self
            .store
            .execute_relaxed(
                "INSERT INTO gateway_idempotency (scope, request_hash, status, response, created_at, updated_at, owner) \
                 VALUES ($1, $2, 0, '', $3, $3, $4) ON CONFLICT (scope) DO NOTHING",
                vec![Arg::Text(s), Arg::Text(h), Arg::Int(t), Arg::Text(me)],
            )
            .await
            .map_err(internal)?;
        if inserted == 1 {
            return Ok(Some(Claim::Run(running)));
        }
        drop(running);
        let row: Option<ClaimRow> = self
            .store
            .fetch_optional_row(
                "SELECT request_hash, status, updated_at, owner, response FROM gateway_idempotency WHERE scope = $1",
                &[scope.into()],
            )
            .await
            .map_err(internal)?;
        let Some(ClaimRow { request_hash: stored_hash, status, updated_at: updated, owner, response }) = row else {
            return Ok(None);
        };
        let same = stored_hash == hash || (!stored_hash.starts_with(KEYED) && legacy.is_some_and(|l| stored_hash == l));
        if !same {
            return Err(ApiError::new(ErrorCode::IdempotencyKeyReused));
        }
        if status == 0 {
            // In flight: running here, or in another gateway within the lease, it is busy.
            // An orphan of this process (its request ended without recording an answer,
            // e.g. while the database was down) or a claim past the lease is taken over.
            let orphan = owner == self.instance && !self.is_running(scope);
            let age = now() - updated;
            if !orphan && age < STALE.as_secs() as i64 {
                return Err(ApiError::new(ErrorCode::IdempotencyInFlight));
            }
            return match self.take_over(scope, owner, updated).await? {
                Some(running) => Ok(Some(Claim::Run(running))),
                None => Err(ApiError::new(ErrorCode::IdempotencyInFlight)),
            };
        }
        Ok(Some(Claim::Replay(response)))
    }

    /// Moves an in-flight claim to this process if it is still as read (one of several
    /// retries racing for it wins).
    async fn take_over(&self, scope: &str, owner: String, updated: i64) -> Result<Option<Running>, ApiError> {
        let running = self.run(scope);
        let (s, t, me) = (scope.to_owned(), now(), self.instance.clone());
        let moved = self
            .store
            .execute_relaxed(
                "UPDATE gateway_idempotency SET updated_at = $2, owner = $3 \
                 WHERE scope = $1 AND status = 0 AND owner = $4 AND updated_at = $5",
                vec![Arg::Text(s), Arg::Int(t), Arg::Text(me), Arg::Text(owner), Arg::Int(updated)],
            )
            .await
            .map_err(internal)?;
        Ok((moved == 1).then_some(running))
    }

    /// Drops every kept answer that names `id` (a person just erased): a replay can no
    /// longer show their data; a retry runs again and the service, which finds its first
    /// outcome by the events' ids, answers from the erased state. Requests still running
    /// keep their claim.
    pub async fn forget_subject(&self, id: uuid::Uuid) -> Result<u64, ApiError> {
        let pattern = format!("%{id}%");
        self.store
            .transaction(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "DELETE FROM gateway_idempotency WHERE status > 0 AND subjects LIKE $1",
                        &[Arg::Text(pattern)],
                    )
                    .await
                })
            })
            .await
            .map_err(internal)
    }

    async fn finish(&self, scope: &str, subject: &str, stored: Option<Stored>) -> Result<(), ApiError> {
        let s = scope.to_owned();
        let Some(stored) = stored else {
            // A 5xx: forget the key so that a retry runs again.
            return self
                .store
                .execute_relaxed("DELETE FROM gateway_idempotency WHERE scope = $1", vec![Arg::Text(s)])
                .await
                .map(|_| ())
                .map_err(internal);
        };
        let subjects = subjects_of(&stored.body);
        let sealed = self.keys.seal_json(subject, "response", &stored).await.map_err(|e| internal(e.to_string()))?;
        let (status, t) = (i64::from(stored.status), now());
        self.store
            .execute_relaxed(
                "UPDATE gateway_idempotency SET status = $2, response = $3, updated_at = $4, subjects = $5 \
                 WHERE scope = $1",
                vec![Arg::Text(s), Arg::Int(status), Arg::Text(sealed.0), Arg::Int(t), Arg::Text(subjects)],
            )
            .await
            .map_err(internal)?;
        Ok(())
    }

    async fn replay(&self, subject: &str, sealed: &str) -> Result<Response, ApiError> {
        let stored: Stored = self
            .keys
            .unseal_json(subject, "response", &domain::types::Sealed(sealed.to_owned()))
            .await
            .map_err(|e| internal(e.to_string()))?
            .ok_or_else(|| internal("stored response is gone"))?;
        let mut resp = Response::new(Body::from(stored.body));
        *resp.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
        for (k, v) in stored.headers {
            if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
                resp.headers_mut().insert(k, v);
            }
        }
        resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
        Ok(resp)
    }
}

enum Claim {
    /// Run the request; this process holds the claim until the guard drops.
    Run(Running),
    Replay(String),
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "idempotency store failed");
    ApiError::new(ErrorCode::Unavailable)
}

/// Every id (a UUID-shaped string value) an answer's JSON body names, space-separated.
fn subjects_of(body: &str) -> String {
    fn walk(v: &serde_json::Value, out: &mut std::collections::BTreeSet<uuid::Uuid>) {
        match v {
            serde_json::Value::String(s) if s.len() == 36 => {
                if let Ok(id) = s.parse() {
                    out.insert(id);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            serde_json::Value::Object(m) => m.values().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut ids = std::collections::BTreeSet::new();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        walk(&v, &mut ids);
    }
    ids.iter().map(uuid::Uuid::to_string).collect::<Vec<_>>().join(" ")
}

/// The prefix of a keyed request digest (rows written before it hold a bare SHA-256).
const KEYED: &str = "k1:";

/// What is kept of a request's content type and body to tell a retry from another
/// request under the same key: a keyed digest, since a body holds names and a bare hash of
/// it would confirm a guessed one to whoever reads the table.
fn request_digest(keys: &KeyStore, request: &[u8]) -> String {
    format!("{KEYED}{}", keys.digest("idempotency request", request))
}

/// The scope of a key: caller, method and path.
fn scope_of(sub: &str, role: Role, method: &Method, path: &str, key: &str) -> String {
    let digest = Sha256::digest(format!("{}\0{sub}\0{method}\0{path}\0{key}", role.name()).as_bytes());
    hex::encode(digest)
}

/// Middleware: applies idempotency to `POST` requests that carry `Idempotency-Key`.
pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST || !req.headers().contains_key("idempotency-key") {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let caller = match <crate::caller::Caller as axum::extract::FromRequestParts<AppState>>::from_request_parts(
        &mut parts, &state,
    )
    .await
    {
        Ok(c) => c,
        Err(_) => return next.run(Request::from_parts(parts, body)).await,
    };
    let Some(key) = parts.headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned) else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let bytes = match to_bytes(body, MAX_BODY + 1).await {
        Ok(b) if b.len() <= MAX_BODY => b,
        _ => return ApiError::new(ErrorCode::TooLarge).into_response(),
    };
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let request = [content_type.as_bytes(), b"\0", &bytes].concat();
    let hash = request_digest(&state.idempotency.keys, &request);
    let legacy = hex::encode(Sha256::digest(&request));
    let scope = scope_of(&caller.sub, caller.role(), &parts.method, parts.uri.path(), &key);
    let subject = format!("idempotency:{}", hex::encode(&Sha256::digest(caller.sub.as_bytes())[..16]));
    let _running = match state.idempotency.claim(&scope, &hash, Some(&legacy)).await {
        Err(e) => return e.into_response(),
        Ok(Claim::Replay(sealed)) => {
            return state.idempotency.replay(&subject, &sealed).await.unwrap_or_else(IntoResponse::into_response);
        }
        Ok(Claim::Run(running)) => running,
    };
    let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let (rparts, rbody) = resp.into_parts();
    let rbytes = to_bytes(rbody, usize::MAX).await.unwrap_or_default();
    let stored = (!rparts.status.is_server_error()).then(|| Stored {
        status: rparts.status.as_u16(),
        headers: KEPT_HEADERS
            .iter()
            .filter_map(|h| rparts.headers.get(h).and_then(|v| v.to_str().ok()).map(|v| (h.to_string(), v.to_owned())))
            .collect(),
        body: String::from_utf8_lossy(&rbytes).into_owned(),
    });
    if let Err(e) = state.idempotency.finish(&scope, &subject, stored).await {
        tracing::warn!(code = %e.code, "could not record an idempotent response");
    }
    Response::from_parts(rparts, Body::from(rbytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn idempotency(db: &testkit::TestDb) -> Idempotency {
        let store = EventStore::connect(&db.url).await.unwrap();
        crate::migrate(&store).await.unwrap();
        let keys = KeyStore::connect(&store, keystore::MasterKey::generate()).await.unwrap();
        Idempotency::new(store, keys)
    }

    async fn orphans_of_this_process_are_taken_over_at_once(db: testkit::TestDb) {
        let one = idempotency(&db).await;
        let other =
            Idempotency { instance: uuid::Uuid::new_v4().to_string(), running: Default::default(), ..one.clone() };

        // A request running here: a retry here or in another gateway is told it is in flight.
        let Claim::Run(running) = one.claim("s1", "h", None).await.unwrap() else { panic!("first claim runs") };
        for (who, i) in [("this gateway", &one), ("another gateway", &other)] {
            let err = i.claim("s1", "h", None).await.err().unwrap_or_else(|| panic!("{who} ran a running request"));
            assert_eq!(err.code, ErrorCode::IdempotencyInFlight, "{who}");
        }
        // It ends without recording an answer (the database was down): the claim is an
        // orphan. Another gateway cannot know that and waits for the lease; this one
        // takes it over at once, and only once.
        drop(running);
        assert_eq!(other.claim("s1", "h", None).await.err().unwrap().code, ErrorCode::IdempotencyInFlight);
        let Claim::Run(again) = one.claim("s1", "h", None).await.unwrap() else { panic!("the orphan is taken over") };
        assert_eq!(one.claim("s1", "h", None).await.err().unwrap().code, ErrorCode::IdempotencyInFlight);
        // The retry records its answer; later repeats replay it, anywhere.
        let stored = Stored { status: 201, headers: vec![], body: "{}".into() };
        one.finish("s1", "idempotency:test", Some(stored)).await.unwrap();
        drop(again);
        for i in [&one, &other] {
            assert!(matches!(i.claim("s1", "h", None).await.unwrap(), Claim::Replay(_)));
        }
        // Another body under the key is still refused.
        assert_eq!(one.claim("s1", "other", None).await.err().unwrap().code, ErrorCode::IdempotencyKeyReused);
    }

    #[tokio::test]
    async fn sqlite_orphans_of_this_process_are_taken_over_at_once() {
        orphans_of_this_process_are_taken_over_at_once(testkit::TestDb::sqlite()).await;
    }

    #[tokio::test]
    async fn postgres_orphans_of_this_process_are_taken_over_at_once() {
        let Some(db) = testkit::TestDb::postgres() else { return };
        orphans_of_this_process_are_taken_over_at_once(db).await;
    }

    async fn kept_requests_are_keyed_digests_and_an_erasure_drops_the_answers_naming_its_person(db: testkit::TestDb) {
        let one = idempotency(&db).await;
        let body = br#"application/json\0{"display_name":"Karen Blixen"}"#;
        let digest = request_digest(&one.keys, body);
        assert!(digest.starts_with(KEYED));
        assert_eq!(digest, request_digest(&one.keys, body), "equal bodies, equal digests");
        assert_ne!(digest, request_digest(&one.keys, b"application/json\0{}"));
        let bare = hex::encode(Sha256::digest(body));
        assert!(!digest.contains(&bare), "a guessed body cannot be confirmed by hashing it");
        let other_keys = KeyStore::connect(&one.store, keystore::MasterKey::generate()).await.unwrap();
        assert_ne!(digest, request_digest(&other_keys, body), "another master key, another digest");
        // A row kept by an older gateway holds the bare hash: its retry still replays.
        let Claim::Run(r) = one.claim("old", &bare, None).await.unwrap() else { panic!("runs") };
        one.finish("old", "idempotency:test", Some(Stored { status: 201, headers: vec![], body: "{}".into() }))
            .await
            .unwrap();
        drop(r);
        assert!(matches!(one.claim("old", &digest, Some(&bare)).await.unwrap(), Claim::Replay(_)));
        assert_eq!(
            one.claim("old", &digest, Some("another")).await.err().unwrap().code,
            ErrorCode::IdempotencyKeyReused
        );

        // Answers naming a person are dropped when the person is erased; others stay, and
        // so does a request still running.
        let (person, other) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        for (scope, body) in [
            ("names", format!(r#"{{"ride_id":"{other}","riders":[{{"resident_id":"{person}","display_name":"K"}}]}}"#)),
            ("unrelated", format!(r#"{{"ride_id":"{other}"}}"#)),
        ] {
            let Claim::Run(r) = one.claim(scope, "k1:x", None).await.unwrap() else { panic!("runs") };
            one.finish(scope, "idempotency:test", Some(Stored { status: 201, headers: vec![], body })).await.unwrap();
            drop(r);
        }
        let Claim::Run(_running) = one.claim("running", "k1:x", None).await.unwrap() else { panic!("runs") };
        assert_eq!(subjects_of(&format!(r#"{{"a":["{person}",{{"b":"{other}"}}],"c":"x"}}"#)).split(' ').count(), 2);
        assert_eq!(one.forget_subject(person).await.unwrap(), 1);
        let Claim::Run(_again) = one.claim("names", "k1:x", None).await.unwrap() else { panic!("runs again") };
        assert!(matches!(one.claim("unrelated", "k1:x", None).await.unwrap(), Claim::Replay(_)));
        assert_eq!(one.claim("running", "k1:x", None).await.err().unwrap().code, ErrorCode::IdempotencyInFlight);
    }

    #[tokio::test]
    async fn sqlite_kept_requests_are_keyed_digests_and_an_erasure_drops_the_answers_naming_its_person() {
        kept_requests_are_keyed_digests_and_an_erasure_drops_the_answers_naming_its_person(testkit::TestDb::sqlite())
            .await;
    }

    #[tokio::test]
    async fn postgres_kept_requests_are_keyed_digests_and_an_erasure_drops_the_answers_naming_its_person() {
        let Some(db) = testkit::TestDb::postgres() else { return };
        kept_requests_are_keyed_digests_and_an_erasure_drops_the_answers_naming_its_person(db).await;
    }
}
