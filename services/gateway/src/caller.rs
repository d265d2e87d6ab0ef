//! Who is calling: the verified token's subject and role, with its scope resolved from the
//! records (a pilot's chapter from the pilot, a coordinator's chapter from the care home),
//! never taken from the token. A retired or erased pilot's token is refused (401); a
//! suspended pilot may read but not book.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use samskab_proto::carehome::v1 as cpb;
use samskab_proto::volunteer::v1 as vpb;
use servicekit::ErrorCode;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{self, Role};
use crate::clients::{Found, Service};
use crate::problem::ApiError;
use domain::types::PilotStatus;
use samskab_proto::common::v1 as common;

/// One grant a request may act under, with its scope resolved from the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acting {
    /// The role grant (`None`: a Samskab token's claimed role, an API key).
    pub grant: Option<Uuid>,
    /// Role and scope.
    pub role: Role,
    /// The chapter the role belongs to (none: admin, network integrator).
    pub chapter: Option<Uuid>,
    /// For pilots: suspended (may read, may not book).
    pub suspended: bool,
}

impl Acting {
    fn facts(&self) -> access::Caller {
        access::Caller { role: self.role, chapter: self.chapter, suspended: self.suspended }
    }
}

/// The caller of a request: a person (or API key) and the grants the request may act
/// under, most powerful first. A request acts under one of them: the first whose rules
/// allow the first action the handler asks about ([`Caller::may`], [`Caller::check`]);
/// from then on every rule, the actor role in events and audit, and the confirmation
/// policy use that grant. Before any action is asked about, reads are allowed if any grant
/// allows them (the most powerful grant that allows it).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The actor id written into events and audit: the person id.
    pub sub: String,
    /// The person.
    pub person: Uuid,
    grants: Arc<[Acting]>,
    chosen: Arc<OnceLock<usize>>,
}

impl Caller {
    /// A caller with the grants it may act under, most powerful first (at least one).
    pub fn new(sub: String, person: Uuid, grants: Vec<Acting>) -> Self {
        assert!(!grants.is_empty(), "a caller acts under at least one grant");
        Caller { sub, person, grants: grants.into(), chosen: Arc::default() }
    }

    /// A caller with one grant.
    pub fn single(sub: String, person: Uuid, acting: Acting) -> Self {
        Caller::new(sub, person, vec![acting])
    }

    /// The grant acted under: the chosen one, else the most powerful.
    pub fn acting(&self) -> Acting {
        self.grants[self.chosen.get().copied().unwrap_or(0)]
    }

    /// The role acted under.
    pub fn role(&self) -> Role {
        self.acting().role
    }

    /// The chapter of the role acted under.
    pub fn chapter(&self) -> Option<Uuid> {
        self.acting().chapter
    }

    /// Whether the role acted under is a suspended pilot's.
    pub fn suspended(&self) -> bool {
        self.acting().suspended
    }

    /// The role grant acted under.
    pub fn grant(&self) -> Option<Uuid> {
        self.acting().grant
    }

    /// The facts the read rules (`access`) ask about, for the grant acted under.
    pub fn facts(&self) -> access::Caller {
        self.acting().facts()
    }

    /// The grants a question is answered over: the chosen one, or all before a choice.
    fn candidates(&self) -> &[Acting] {
        match self.chosen.get() {
            Some(&i) => &self.grants[i..=i],
            None => &self.grants,
        }
    }

    /// Whether the caller is `pilot` (under any grant it may still act under).
    pub fn is_pilot(&self, pilot: Uuid) -> bool {
        self.candidates().iter().any(|a| a.facts().is_pilot(pilot))
    }

    /// The pilot the caller is, if it may act as one.
    pub fn pilot(&self) -> Option<Uuid> {
        self.candidates().iter().find_map(|a| a.facts().pilot())
    }

    /// Whether the caller may read `object` (404 otherwise).
    pub fn may_read(&self, object: &access::Object) -> bool {
        self.candidates().iter().any(|a| access::may_read(&a.facts(), object))
    }

    /// Whether the caller sees `object`'s personal fields.
    pub fn sees_personal(&self, object: &access::Object) -> bool {
        self.candidates().iter().any(|a| access::sees_personal(&a.facts(), object))
    }

    /// Whether the caller may do `action` to `object`. The first time this allows an
    /// action, the most powerful grant that allows it becomes the grant acted under.
    pub fn may(&self, action: access::Action, object: &access::Object) -> bool {
        let allows = |i: usize| access::may(&self.grants[i].facts(), action, object);
        if let Some(&i) = self.chosen.get() {
            return allows(i);
        }
        let Some(i) = (0..self.grants.len()).find(|&i| allows(i)) else {
            return false;
        };
        allows(*self.chosen.get_or_init(|| i))
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

    /// The credential the caller acts with, as webhooks and calendar tokens remember it:
    /// `key:<api_key_id>`, `grant:<person_id>:<role_grant_id>`, or '' for a Samskab token.
    pub fn credential(&self) -> String {
        match (self.grant(), self.role()) {
            (Some(g), _) => format!("grant:{}:{g}", self.person),
            (None, Role::Integrator(_)) if self.person.is_nil() => format!("key:{}", self.sub),
            _ => String::new(),
        }
    }

    /// The key rate limits count by.
    pub fn rate_key(&self) -> String {
        format!("{}:{}", self.role().name(), self.sub)
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

/// The header that names the role grant a request acts under.
pub const ROLE_GRANT_HEADER: &str = "samskab-role-grant";

/// Who signed in, before any role is chosen: the person, and either the role a Samskab
/// token carries in its claims or the person's role grants (read from their owners).
#[derive(Debug, Clone)]
pub struct Person {
    /// The pseudonymous person id.
    pub person_id: Uuid,
    /// For Samskab's own tokens: the role of their claims.
    pub claimed: Option<Role>,
    /// For people signed in at a provider: their grants in force.
    pub grants: Vec<common::RoleGrant>,
}

impl Person {
    /// The role of a grant (`None`: a role this gateway does not know).
    pub fn role_of(g: &common::RoleGrant) -> Option<Role> {
        let id = |s: &str| s.parse::<Uuid>().ok();
        Some(match g.role.as_str() {
            "admin" => Role::Admin,
            "chapter_admin" => Role::ChapterAdmin(id(&g.chapter_id)?),
            "coordinator" => Role::Coordinator(id(&g.carehome_id)?),
            "pilot" => Role::Pilot(id(&g.pilot_id)?),
            _ => return None,
        })
    }

    /// The grants a request may act under: the one the header names (403 if the person
    /// holds no such grant), else all the person holds, most powerful first (admin >
    /// chapter_admin > coordinator > pilot); the request acts under the first that allows it.
    pub fn acting(&self, named: Option<&str>) -> Result<Vec<(Uuid, Role)>, ApiError> {
        let mut held: Vec<(Uuid, Role)> =
            self.grants.iter().filter_map(|g| Some((g.role_grant_id.parse().ok()?, Person::role_of(g)?))).collect();
        if let Some(named) = named {
            let named: Uuid = named
                .trim()
                .parse()
                .map_err(|_| ApiError::forbidden().detail("Samskab-Role-Grant must name one of your role grants"))?;
            held.retain(|(id, _)| *id == named);
            if held.is_empty() {
                return Err(ApiError::forbidden().detail("you hold no such role grant"));
            }
            return Ok(held);
        }
        held.sort_by_key(|(id, role)| (rank(*role), *id));
        Ok(held)
    }
}

fn rank(role: Role) -> u8 {
    match role {
        Role::Admin => 0,
        Role::ChapterAdmin(_) => 1,
        Role::Coordinator(_) => 2,
        Role::Pilot(_) => 3,
        Role::Integrator(_) => 4,
    }
}

/// A person's grants, cached at most [`GRANT_TTL`] and never when there are none (so a
/// redemption is in force at the redeemer's next request on any replica).
#[derive(Default)]
pub struct GrantCache {
    entries: Mutex<HashMap<Uuid, (Instant, Vec<common::RoleGrant>)>>,
}

/// How long a person's grants are kept.
pub const GRANT_TTL: Duration = Duration::from_secs(1);

impl GrantCache {
    fn get(&self, person: Uuid) -> Option<Vec<common::RoleGrant>> {
        let map = self.entries.lock().expect("cache lock");
        map.get(&person).filter(|(at, _)| at.elapsed() < GRANT_TTL).map(|(_, g)| g.clone())
    }

    fn put(&self, person: Uuid, grants: &[common::RoleGrant]) {
        let mut map = self.entries.lock().expect("cache lock");
        if map.len() > 10_000 {
            map.retain(|_, (at, _)| at.elapsed() < GRANT_TTL);
        }
        if grants.is_empty() {
            map.remove(&person);
        } else {
            map.insert(person, (Instant::now(), grants.to_vec()));
        }
    }

    /// Forgets a person's grants (after a change made through this replica).
    pub fn forget(&self, person: Uuid) {
        self.entries.lock().expect("cache lock").remove(&person);
    }
}

/// A person's grants in force, from the services that own them.
pub async fn grants_of(state: &AppState, person: Uuid) -> Result<Vec<common::RoleGrant>, ApiError> {
    state.credentials.grants_of(person).await
}

/// Checks whether a remembered credential (of a webhook, a calendar token) is still in
/// force: the key not revoked or expired, the person still holding the grant (each read
/// at most [`GRANT_TTL`] old).
#[derive(Clone)]
pub struct Credentials {
    clients: crate::clients::Clients,
    grants: Arc<GrantCache>,
}

impl Credentials {
    /// Over the services and the grant cache.
    pub fn new(clients: crate::clients::Clients, grants: Arc<GrantCache>) -> Self {
        Credentials { clients, grants }
    }

    /// Whether `credential` is in force ('' always is: a Samskab token's claims).
    pub async fn in_force(&self, credential: &str) -> Result<bool, ApiError> {
        if let Some(key) = credential.strip_prefix("key:") {
            let req = common::ApiKeyRequest { context: None, api_key_id: key.to_owned() };
            let k = self.clients.access(Service::CareHome).get_api_key(req).await.found()?;
            return Ok(k.is_some_and(|k| k.status == "active"));
        }
        if let Some(rest) = credential.strip_prefix("grant:") {
            let Some((person, grant)) = rest.split_once(':') else { return Ok(false) };
            let Ok(person) = person.parse() else { return Ok(false) };
            return Ok(self.grants_of(person).await?.iter().any(|g| g.role_grant_id == grant));
        }
        Ok(credential.is_empty())
    }

    /// A person's grants in force (cached at most [`GRANT_TTL`], never when none).
    pub async fn grants_of(&self, person: Uuid) -> Result<Vec<common::RoleGrant>, ApiError> {
        if let Some(hit) = self.grants.get(person) {
            return Ok(hit);
        }
        let req = common::PersonRequest { person_id: person.to_string() };
        let (mut carehome, mut volunteer) =
            (self.clients.access(Service::CareHome), self.clients.access(Service::Volunteer));
        let (staff, pilots) = tokio::join!(carehome.person_grants(req.clone()), volunteer.person_grants(req));
        let mut grants = staff.reply()?.grants;
        grants.extend(pilots.reply()?.grants);
        self.grants.put(person, &grants);
        Ok(grants)
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(|| ApiError::unauthenticated("an Authorization: Bearer token is required"))
}

impl FromRequestParts<AppState> for Person {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(p) = parts.extensions.get::<Person>() {
            return Ok(p.clone());
        }
        let token = bearer(parts)?;
        let person = if token.starts_with(domain::access::API_KEY_PREFIX) {
            return Err(ApiError::forbidden().detail("an API key acts as an integrator, not as a person"));
        } else if state.oidc.is_configured() && state.oidc.claims_issuer(token) {
            let id = state.oidc.verify(token).await?;
            let person_id = state.keys.person_id(&id.issuer, &id.subject);
            Person { person_id, claimed: None, grants: grants_of(state, person_id).await? }
        } else if !state.local_tokens {
            return Err(ApiError::unauthenticated("Samskab's own tokens are switched off here"));
        } else {
            let claims = state.keys.verify(token)?;
            let role = claims.role().map_err(ApiError::unauthenticated)?;
            Person { person_id: state.keys.person_id(auth::ISSUER, &claims.sub), claimed: Some(role), grants: vec![] }
        };
        parts.extensions.insert(person.clone());
        Ok(person)
    }
}

/// Checked API keys, kept at most [`GRANT_TTL`] (a revoked key is refused within 2 s on
/// every replica); by the key's hash, never the key.
#[derive(Default)]
pub struct ApiKeyCache {
    entries: Mutex<HashMap<String, (Instant, common::ApiKey)>>,
}

/// The caller an API key is: an integrator of its chapter or of the network.
async fn api_key_caller(state: &AppState, key: &str) -> Result<Caller, ApiError> {
    use sha2::{Digest, Sha256};
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    let cached = {
        let map = state.api_keys.entries.lock().expect("cache lock");
        map.get(&hash).filter(|(at, _)| at.elapsed() < GRANT_TTL).map(|(_, k)| k.clone())
    };
    let k = match cached {
        Some(k) => k,
        None => {
            let req = common::CheckApiKeyRequest { key: key.to_owned() };
            let k = state.clients.access(Service::CareHome).check_api_key(req).await.reply()?;
            let mut map = state.api_keys.entries.lock().expect("cache lock");
            if map.len() > 10_000 {
                map.retain(|_, (at, _)| at.elapsed() < GRANT_TTL);
            }
            map.insert(hash, (Instant::now(), k.clone()));
            k
        }
    };
    let chapter: Option<Uuid> =
        if k.network { None } else { Some(k.chapter_id.parse().map_err(|_| ApiError::new(ErrorCode::Internal))?) };
    let acting = Acting { grant: None, role: Role::Integrator(chapter), chapter, suspended: false };
    Ok(Caller::single(k.api_key_id.clone(), Uuid::nil(), acting))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(c) = parts.extensions.get::<Caller>() {
            return Ok(c.clone());
        }
        if let Ok(token) = bearer(parts)
            && token.starts_with(domain::access::API_KEY_PREFIX)
        {
            let caller = api_key_caller(state, token).await?;
            parts.extensions.insert(caller.clone());
            return Ok(caller);
        }
        let person = Person::from_request_parts(parts, state).await?;
        let sub = person.person_id.to_string();
        let caller = match person.claimed {
            Some(role) => {
                let (chapter, suspended) = resolve(state, role).await?;
                Caller::single(sub, person.person_id, Acting { grant: None, role, chapter, suspended })
            }
            None => {
                let named = parts.headers.get(ROLE_GRANT_HEADER).map(|v| v.to_str().unwrap_or("-"));
                let held = person.acting(named)?;
                if held.is_empty() {
                    return Err(ApiError::forbidden().detail("you hold no role here yet; redeem an invitation"));
                }
                // A grant whose scope no longer resolves (a pilot retired a moment ago) is
                // left out; if none resolves, the first refusal is the answer.
                let mut grants = Vec::with_capacity(held.len());
                let mut refusal = None;
                for (grant, role) in held {
                    match resolve(state, role).await {
                        Ok((chapter, suspended)) => {
                            grants.push(Acting { grant: Some(grant), role, chapter, suspended })
                        }
                        Err(e) => refusal = refusal.or(Some(e)),
                    }
                }
                match refusal {
                    Some(e) if grants.is_empty() => return Err(e),
                    _ => Caller::new(sub, person.person_id, grants),
                }
            }
        };
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

/// Refuses a suspended pilot's attempt to book or claim (422 `pilot-suspended`): called
/// when no grant allowed it, so it says why if one of them is a suspended pilot's.
pub fn may_book(caller: &Caller) -> Result<(), ApiError> {
    if caller.candidates().iter().any(|a| a.suspended) {
        return Err(ApiError::new(ErrorCode::PilotSuspended).detail("a suspended pilot may read but not book"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use access::{Action, Object};

    const CHAPTER: Uuid = Uuid::from_u128(1);
    const HOME_A: Uuid = Uuid::from_u128(2);
    const HOME_B: Uuid = Uuid::from_u128(3);
    const PILOT: Uuid = Uuid::from_u128(4);

    /// A coordinator of home A who also pilots in the chapter.
    fn pia() -> Caller {
        let grant = |n: u128, role: Role| Acting {
            grant: Some(Uuid::from_u128(n)),
            role,
            chapter: Some(CHAPTER),
            suspended: false,
        };
        Caller::new(
            "pia".into(),
            Uuid::from_u128(9),
            vec![grant(10, Role::Coordinator(HOME_A)), grant(11, Role::Pilot(PILOT))],
        )
    }

    #[test]
    fn a_request_acts_under_the_most_powerful_grant_that_allows_it() {
        let at = |home| Object::Ride { chapter: CHAPTER, carehome: home, pilot: PILOT };
        // At home A both allow: the coordinator grant, the more powerful, is acted under.
        let c = pia();
        assert_eq!(c.role(), Role::Coordinator(HOME_A));
        assert!(c.may(Action::Book, &at(HOME_A)));
        assert_eq!((c.role(), c.grant()), (Role::Coordinator(HOME_A), Some(Uuid::from_u128(10))));
        // At home B only the pilot grant allows booking: it is chosen, for the whole request
        // (the clone the handler holds shares the choice).
        let c = pia();
        let held = c.clone();
        assert!(c.may(Action::Book, &at(HOME_B)));
        assert_eq!((held.role(), held.grant()), (Role::Pilot(PILOT), Some(Uuid::from_u128(11))));
        assert_eq!(held.pilot(), Some(PILOT));
        // Once chosen, the other grant answers nothing more: no mixing of two grants' rights.
        assert!(!c.may(Action::Manage, &Object::CareHome { id: HOME_A, chapter: CHAPTER }));
        assert!(!c.sees_personal(&Object::Resident { carehome: HOME_A, chapter: CHAPTER }));
        // Before a choice, a read is allowed if any grant allows it; nothing allowed, no choice.
        let c = pia();
        assert!(c.may_read(&Object::Resident { carehome: HOME_A, chapter: CHAPTER }));
        assert!(!c.may(Action::Administer, &Object::Chapter(CHAPTER)));
        assert_eq!(c.chosen.get(), None);
        assert!(c.check(Action::Manage, &Object::CareHome { id: HOME_A, chapter: CHAPTER }).is_ok());
        assert_eq!(c.role(), Role::Coordinator(HOME_A));
    }

    #[test]
    fn a_suspended_pilot_grant_is_named_when_nothing_allows_a_booking() {
        let suspended = Acting { grant: None, role: Role::Pilot(PILOT), chapter: Some(CHAPTER), suspended: true };
        let c = Caller::single("p".into(), Uuid::nil(), suspended);
        assert!(!c.may(Action::Book, &Object::Ride { chapter: CHAPTER, carehome: HOME_A, pilot: PILOT }));
        assert!(may_book(&c).is_err());
        assert!(may_book(&pia()).is_ok());
    }
}
