//! Idempotency of `POST`s: a key is scoped to the caller and the route (method and path),
//! kept at least 24 h in the gateway's database, and travels into the command, where the
//! events' ids derive from it. A repeat with the same body gets the original status and
//! body (errors other than 5xx included); another body with the same key is 422
//! `idempotency-key-reused`; a repeat while the first still runs is 409
//! `idempotency-in-flight`. A request whose gateway died mid-way (the row stays "in
//! flight") may be retried after a short while: the service finds its original outcome
//! by the event ids. Stored responses are sealed with a per-caller key.

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
}

#[derive(Serialize, Deserialize)]
struct Stored {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

const KEPT_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::ETAG];

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Idempotency {
    /// Over the gateway's database (its migrations applied by the caller).
    pub fn new(store: EventStore, keys: KeyStore) -> Self {
        Idempotency { store, keys }
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

    async fn claim(&self, scope: &str, hash: &str) -> Result<Claim, ApiError> {
        let (s, h, t) = (scope.to_owned(), hash.to_owned(), now());
        let inserted = self
            .store
            .transaction(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "INSERT INTO gateway_idempotency (scope, request_hash, status, response, created_at, updated_at) \
                         VALUES ($1, $2, 0, '', $3, $3) ON CONFLICT (scope) DO NOTHING",
                        &[Arg::Text(s), Arg::Text(h), Arg::Int(t)],
                    )
                    .await
                })
            })
            .await
            .map_err(internal)?;
        if inserted == 1 {
            return Ok(Claim::Run);
        }
        let row = self
            .store
            .fetch_texts(
                "SELECT request_hash || ' ' || CAST(status AS TEXT) || ' ' || CAST(updated_at AS TEXT) || ' ' || response \
                 FROM gateway_idempotency WHERE scope = $1",
                &[scope.into()],
            )
            .await
            .map_err(internal)?;
        let Some(row) = row.first() else { return Ok(Claim::Run) };
        let mut parts = row.splitn(4, ' ');
        let (stored_hash, status, updated, response) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("0"),
            parts.next().unwrap_or("0"),
            parts.next().unwrap_or(""),
        );
        if stored_hash != hash {
            return Err(ApiError::new(ErrorCode::IdempotencyKeyReused));
        }
        if status == "0" {
            let age = now() - updated.parse::<i64>().unwrap_or(0);
            if age < STALE.as_secs() as i64 {
                return Err(ApiError::new(ErrorCode::IdempotencyInFlight));
            }
            self.touch(scope).await?;
            return Ok(Claim::Run);
        }
        Ok(Claim::Replay(response.to_owned()))
    }

    async fn touch(&self, scope: &str) -> Result<(), ApiError> {
        let (s, t) = (scope.to_owned(), now());
        self.store
            .transaction(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "UPDATE gateway_idempotency SET updated_at = $2 WHERE scope = $1",
                        &[Arg::Text(s), Arg::Int(t)],
                    )
                    .await
                })
            })
            .await
            .map_err(internal)?;
        Ok(())
    }

    async fn finish(&self, scope: &str, subject: &str, stored: Option<Stored>) -> Result<(), ApiError> {
        let s = scope.to_owned();
        let Some(stored) = stored else {
            // A 5xx: forget the key so that a retry runs again.
            return self
                .store
                .transaction(move |tx| {
                    Box::pin(async move {
                        tx.execute("DELETE FROM gateway_idempotency WHERE scope = $1", &[Arg::Text(s)]).await
                    })
                })
                .await
                .map(|_| ())
                .map_err(internal);
        };
        let sealed = self.keys.seal_json(subject, "response", &stored).await.map_err(|e| internal(e.to_string()))?;
        let (status, t) = (i64::from(stored.status), now());
        self.store
            .transaction(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "UPDATE gateway_idempotency SET status = $2, response = $3, updated_at = $4 WHERE scope = $1",
                        &[Arg::Text(s), Arg::Int(status), Arg::Text(sealed.0), Arg::Int(t)],
                    )
                    .await
                })
            })
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
    Run,
    Replay(String),
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "idempotency store failed");
    ApiError::new(ErrorCode::Unavailable)
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
    let hash = hex::encode(Sha256::digest([content_type.as_bytes(), b"\0", &bytes].concat()));
    let scope = scope_of(&caller.sub, caller.role, &parts.method, parts.uri.path(), &key);
    let subject = format!("idempotency:{}", hex::encode(&Sha256::digest(caller.sub.as_bytes())[..16]));
    match state.idempotency.claim(&scope, &hash).await {
        Err(e) => return e.into_response(),
        Ok(Claim::Replay(sealed)) => {
            return state.idempotency.replay(&subject, &sealed).await.unwrap_or_else(IntoResponse::into_response);
        }
        Ok(Claim::Run) => {}
    }
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
