//! Who is calling: the verified token's subject and role, with its scope resolved from the
//! records (a pilot's chapter from the pilot, a coordinator's chapter from the care home),
//! never taken from the token. A retired or erased pilot's token is refused (401); a
//! suspended pilot may read but not book.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use samskab_proto::carehome::v1 as cpb;
use samskab_proto::volunteer::v1 as vpb;
use servicekit::ErrorCode;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Role;
use crate::clients::Found;
use crate::problem::ApiError;
use domain::types::PilotStatus;

/// The caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Pseudonymous user id (`sub`).
    pub sub: String,
    /// Role and scope.
    pub role: Role,
    /// The chapter the caller belongs to (none: admin, network integrator).
    pub chapter: Option<Uuid>,
    /// For pilots: suspended (may read, may not book).
    pub suspended: bool,
}

impl Caller {
    /// The facts the read rules (`access`) ask about.
    pub fn facts(&self) -> access::Caller {
        access::Caller { role: self.role, chapter: self.chapter, suspended: self.suspended }
    }

    /// Whether the caller is `pilot`.
    pub fn is_pilot(&self, pilot: Uuid) -> bool {
        self.facts().is_pilot(pilot)
    }

    /// Whether the caller is a pilot at all.
    pub fn pilot(&self) -> Option<Uuid> {
        self.facts().pilot()
    }

    /// Whether the caller may read `object` (404 otherwise).
    pub fn may_read(&self, object: &access::Object) -> bool {
        access::may_read(&self.facts(), object)
    }

    /// Whether the caller sees `object`'s personal fields.
    pub fn sees_personal(&self, object: &access::Object) -> bool {
        access::sees_personal(&self.facts(), object)
    }

    /// Whether the caller may do `action` to `object`.
    pub fn may(&self, action: access::Action, object: &access::Object) -> bool {
        access::may(&self.facts(), action, object)
    }

    /// 404 unless the caller may read `object`; then 403 unless it may do `action` to it.
    pub fn check(&self, action: access::Action, object: &access::Object) -> Result<(), ApiError> {
        if !self.may_read(object) {
            return Err(ApiError::not_found());
        }
        if !self.may(action, object) {
            return Err(ApiError::forbidden());
        }
        Ok(())
    }

    /// The key rate limits count by.
    pub fn rate_key(&self) -> String {
        format!("{}:{}", self.role.name(), self.sub)
    }
}

/// What the caller lookups cache (a couple of seconds: status changes show quickly).
pub struct ScopeCache {
    entries: Mutex<HashMap<String, CachedScope>>,
    ttl: Duration,
}

/// When it was looked up, the chapter, and whether the pilot is suspended.
type CachedScope = (Instant, Option<Uuid>, bool);

/// How long a lookup is kept unless configured (`SAMSKAB_SCOPE_CACHE_MS`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(2);

impl Default for ScopeCache {
    fn default() -> Self {
        ScopeCache::new(DEFAULT_TTL)
    }
}

impl ScopeCache {
    /// A cache keeping each lookup for `ttl` (zero: no caching).
    pub fn new(ttl: Duration) -> Self {
        ScopeCache { entries: Mutex::default(), ttl }
    }

    fn get(&self, key: &str) -> Option<(Option<Uuid>, bool)> {
        let map = self.entries.lock().expect("cache lock");
        map.get(key).filter(|(at, ..)| at.elapsed() < self.ttl).map(|(_, c, s)| (*c, *s))
    }

    fn put(&self, key: String, chapter: Option<Uuid>, suspended: bool) {
        let mut map = self.entries.lock().expect("cache lock");
        if map.len() > 10_000 {
            map.retain(|_, (at, ..)| at.elapsed() < self.ttl);
        }
        map.insert(key, (Instant::now(), chapter, suspended));
    }
}

/// The chapter of a role and whether its pilot is suspended (401 for a retired or erased
/// pilot, an unknown pilot or care home).
pub(crate) async fn resolve(state: &AppState, role: Role) -> Result<(Option<Uuid>, bool), ApiError> {
    match role {
        Role::Admin => Ok((None, false)),
        Role::ChapterAdmin(c) | Role::Integrator(Some(c)) => Ok((Some(c), false)),
        Role::Integrator(None) => Ok((None, false)),
        Role::Pilot(p) => {
            let key = format!("pilot:{p}");
            if let Some(hit) = state.scopes.get(&key) {
                return Ok(hit);
            }
            let pilot = state.clients.volunteer().get_pilot(vpb::GetPilotRequest { pilot_id: p.to_string() }).await;
            let pilot = pilot.found()?.ok_or_else(|| ApiError::unauthenticated("unknown pilot"))?;
            let status = pilot.status.parse::<PilotStatus>().map_err(|_| ApiError::new(ErrorCode::Internal))?;
            if matches!(status, PilotStatus::Retired | PilotStatus::Erased) {
                return Err(ApiError::unauthenticated("the pilot is no longer active"));
            }
            let chapter = pilot.chapter_id.parse().ok();
            let suspended = status == PilotStatus::Suspended;
            state.scopes.put(key, chapter, suspended);
            Ok((chapter, suspended))
        }
        Role::Coordinator(h) => {
            let key = format!("carehome:{h}");
            if let Some(hit) = state.scopes.get(&key) {
                return Ok(hit);
            }
            let home = state.clients.carehome().get_care_home(cpb::IdRequest { id: h.to_string() }).await;
            let home = home.found()?.ok_or_else(|| ApiError::unauthenticated("unknown care home"))?;
            let chapter = home.chapter_id.parse().ok();
            state.scopes.put(key, chapter, false);
            Ok((chapter, false))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(c) = parts.extensions.get::<Caller>() {
            return Ok(c.clone());
        }
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or_else(|| ApiError::unauthenticated("an Authorization: Bearer token is required"))?;
        if !state.local_tokens {
            return Err(ApiError::unauthenticated("Samskab's own tokens are switched off here"));
        }
        let claims = state.keys.verify(token.trim())?;
        let role = claims.role().map_err(ApiError::unauthenticated)?;
        let (chapter, suspended) = resolve(state, role).await?;
        let caller = Caller { sub: claims.sub, role, chapter, suspended };
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

impl From<access::Refusal> for ApiError {
    fn from(r: access::Refusal) -> Self {
        match r {
            access::Refusal::NotFound => ApiError::not_found(),
            access::Refusal::Forbidden(None) => ApiError::forbidden(),
            access::Refusal::Forbidden(Some(why)) => ApiError::forbidden().detail(why),
        }
    }
}

/// Refuses a suspended pilot's attempt to book or claim (422 `pilot-suspended`).
pub fn may_book(caller: &Caller) -> Result<(), ApiError> {
    if caller.suspended {
        return Err(ApiError::new(ErrorCode::PilotSuspended).detail("a suspended pilot may read but not book"));
    }
    Ok(())
}
