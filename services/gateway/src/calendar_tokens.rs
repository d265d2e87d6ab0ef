//! Calendar tokens: read-only, revocable credentials that calendar applications put in a
//! feed's URL (`?token=`), because they cannot send an `Authorization` header. A token
//! opens exactly one calendar (a care home's or a pilot's) and nothing else: every other
//! route reads credentials from the `Authorization` header only, and a bearer JWT in the
//! query string is never accepted. The token acts with the rights of whoever made it, as
//! they are at each use (a retired pilot's tokens stop working). The gateway keeps only a
//! SHA-256 hash of each token, in its own database; deleting the row revokes it.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use eventlog::{Arg, EventStore};
use rand::Rng;
use servicekit::ErrorCode;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Role;
use crate::caller::{Acting, Caller, resolve};
use crate::problem::ApiError;

/// What a token opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calendar {
    /// A care home's calendar.
    CareHome(Uuid),
    /// A pilot's calendar.
    Pilot(Uuid),
}

impl Calendar {
    fn kind(self) -> &'static str {
        match self {
            Calendar::CareHome(_) => "carehome",
            Calendar::Pilot(_) => "pilot",
        }
    }

    fn id(self) -> Uuid {
        match self {
            Calendar::CareHome(id) | Calendar::Pilot(id) => id,
        }
    }

    /// The feed's path.
    pub fn path(self) -> String {
        match self {
            Calendar::CareHome(id) => format!("/v1/carehomes/{id}/calendar.ics"),
            Calendar::Pilot(id) => format!("/v1/pilots/{id}/calendar.ics"),
        }
    }
}

/// A stored token (never its secret).
#[derive(Debug, Clone)]
pub struct Record {
    /// Its id.
    pub id: Uuid,
    /// The calendar it opens.
    pub calendar: Calendar,
    /// That calendar's chapter.
    pub chapter: Uuid,
    /// Who made it: role and scope, and `sub`.
    pub owner_role: Role,
    /// The maker's pseudonymous id.
    pub owner_sub: String,
    /// The credential it was made with (`Caller::credential`), checked at every read.
    pub owner_credential: String,
    /// When it was made (Unix seconds).
    pub created_at: i64,
    /// When it stops working (Unix seconds), if ever.
    pub expires_at: Option<i64>,
}

impl Record {
    /// Whether `caller` made it (same subject, role and scope).
    pub fn owned_by(&self, caller: &Caller) -> bool {
        self.owner_sub == caller.sub && self.owner_role == caller.role()
    }
}

/// The role's name and scope as stored.
fn role_parts(role: Role) -> (&'static str, String) {
    let scope = match role {
        Role::Admin | Role::Integrator(None) => String::new(),
        Role::ChapterAdmin(c) | Role::Integrator(Some(c)) => c.to_string(),
        Role::Coordinator(h) => h.to_string(),
        Role::Pilot(p) => p.to_string(),
    };
    (role.name(), scope)
}

fn role_of(name: &str, scope: &str) -> Option<Role> {
    let id = scope.parse::<Uuid>().ok();
    Some(match name {
        "admin" => Role::Admin,
        "chapter_admin" => Role::ChapterAdmin(id?),
        "coordinator" => Role::Coordinator(id?),
        "pilot" => Role::Pilot(id?),
        "integrator" => Role::Integrator(id),
        _ => return None,
    })
}

/// The prefix of every calendar token (so that one is recognisable in a leak report).
pub const PREFIX: &str = "sct_";

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A query of whole token rows (read as [`Row`]).
macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT calendar_token_id, calendar_kind, calendar_id, chapter_id, owner_role, owner_scope, created_at, \
             owner_sub, owner_credential, expires_at FROM gateway_calendar_tokens ",
            $rest
        )
    };
}

/// A token's row as stored (ids as text, decoded to `Uuid`).
#[derive(sqlx::FromRow)]
struct Row {
    #[sqlx(try_from = "String")]
    calendar_token_id: Uuid,
    calendar_kind: String,
    #[sqlx(try_from = "String")]
    calendar_id: Uuid,
    #[sqlx(try_from = "String")]
    chapter_id: Uuid,
    owner_role: String,
    owner_scope: String,
    created_at: i64,
    owner_sub: String,
    owner_credential: String,
    expires_at: Option<i64>,
}

impl Row {
    /// The record, unless the row names a calendar kind or role this gateway does not know.
    fn record(self) -> Option<Record> {
        let calendar = match self.calendar_kind.as_str() {
            "carehome" => Calendar::CareHome(self.calendar_id),
            "pilot" => Calendar::Pilot(self.calendar_id),
            _ => return None,
        };
        Some(Record {
            id: self.calendar_token_id,
            calendar,
            chapter: self.chapter_id,
            owner_role: role_of(&self.owner_role, &self.owner_scope)?,
            owner_sub: self.owner_sub,
            owner_credential: self.owner_credential,
            created_at: self.created_at,
            expires_at: self.expires_at,
        })
    }
}

fn unavailable(e: eventlog::Error) -> ApiError {
    tracing::error!(error = %e, "calendar token store failed");
    ApiError::new(ErrorCode::Unavailable)
}

/// The tokens, in the gateway's database.
#[derive(Clone)]
pub struct CalendarTokens {
    store: EventStore,
}

impl CalendarTokens {
    /// Over the gateway's database (its migrations applied by the caller).
    pub fn new(store: EventStore) -> Self {
        CalendarTokens { store }
    }

    /// Makes a token for `calendar` (in `chapter`) owned by `owner`, working until
    /// `expires_at` (Unix seconds) if given; returns it with its secret.
    pub async fn create(
        &self,
        owner: &Caller,
        calendar: Calendar,
        chapter: Uuid,
        expires_at: Option<i64>,
    ) -> Result<(Record, String), ApiError> {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let token = format!("{PREFIX}{}", hex::encode(secret));
        let record = Record {
            id: Uuid::now_v7(),
            calendar,
            chapter,
            owner_role: owner.role(),
            owner_sub: owner.sub.clone(),
            owner_credential: owner.credential(),
            created_at: chrono::Utc::now().timestamp(),
            expires_at,
        };
        let (role, scope) = role_parts(owner.role());
        let args = vec![
            Arg::Text(record.id.to_string()),
            Arg::Text(hash(&token)),
            Arg::Text(calendar.kind().to_owned()),
            Arg::Text(calendar.id().to_string()),
            Arg::Text(chapter.to_string()),
            Arg::Text(role.to_owned()),
            Arg::Text(scope),
            Arg::Text(record.owner_sub.clone()),
            Arg::Int(record.created_at),
            Arg::Text(record.owner_credential.clone()),
            expires_at.map_or(Arg::Null, Arg::Int),
        ];
        self.store
            .transaction(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "INSERT INTO gateway_calendar_tokens (calendar_token_id, token_hash, calendar_kind, calendar_id, \
                         chapter_id, owner_role, owner_scope, owner_sub, created_at, owner_credential, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                        &args,
                    )
                    .await
                })
            })
            .await
            .map_err(unavailable)?;
        Ok((record, token))
    }

    /// The token with this secret, if it exists (and so is not revoked).
    pub async fn find(&self, token: &str) -> Result<Option<Record>, ApiError> {
        let row: Option<Row> = self
            .store
            .fetch_optional_row(select!("WHERE token_hash = $1"), &[Arg::Text(hash(token))])
            .await
            .map_err(unavailable)?;
        Ok(row.and_then(Row::record))
    }

    /// A token by id.
    pub async fn get(&self, id: Uuid) -> Result<Option<Record>, ApiError> {
        let row: Option<Row> = self
            .store
            .fetch_optional_row(select!("WHERE calendar_token_id = $1"), &[Arg::Text(id.to_string())])
            .await
            .map_err(unavailable)?;
        Ok(row.and_then(Row::record))
    }

    /// The caller's own tokens in id order, after `after`, at most `limit`.
    pub async fn list(&self, owner: &Caller, after: Option<Uuid>, limit: u32) -> Result<Vec<Record>, ApiError> {
        let (role, scope) = role_parts(owner.role());
        let rows: Vec<Row> = self
            .store
            .fetch_rows(
                select!(
                    "WHERE owner_sub = $1 AND owner_role = $2 AND owner_scope = $3 AND calendar_token_id > $4 \
                     ORDER BY calendar_token_id LIMIT $5"
                ),
                &[
                    Arg::Text(owner.sub.clone()),
                    Arg::Text(role.to_owned()),
                    Arg::Text(scope),
                    Arg::Text(after.map(|a| a.to_string()).unwrap_or_default()),
                    Arg::Int(i64::from(limit)),
                ],
            )
            .await
            .map_err(unavailable)?;
        Ok(rows.into_iter().filter_map(Row::record).collect())
    }

    /// Revokes a token (its row goes: the secret stops working at once).
    pub async fn delete(&self, id: Uuid) -> Result<bool, ApiError> {
        let n = self
            .store
            .transaction(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "DELETE FROM gateway_calendar_tokens WHERE calendar_token_id = $1",
                        &[Arg::Text(id.to_string())],
                    )
                    .await
                })
            })
            .await
            .map_err(unavailable)?;
        Ok(n > 0)
    }
}

/// The caller of a calendar feed: from `?token=` (a calendar token, bound to the calendar
/// it was made for) or else from the `Authorization` header as on every route.
#[derive(Debug, Clone)]
pub struct CalendarCaller {
    /// Who reads, with the rights of the token's maker.
    pub caller: Caller,
    /// The calendar token used, if any.
    pub token: Option<Record>,
}

impl CalendarCaller {
    /// Refuses a calendar token made for another calendar (401: it is no credential here).
    pub fn opens(&self, calendar: Calendar) -> Result<(), ApiError> {
        match &self.token {
            Some(t) if t.calendar != calendar => {
                Err(ApiError::unauthenticated("this calendar token is for another calendar"))
            }
            _ => Ok(()),
        }
    }
}

impl CalendarCaller {
    /// What a feed answers when the reader may not read it: with a calendar token, 401 (the
    /// token stopped working: its maker no longer has that calendar); otherwise `e` (403 or
    /// 404, as for any route).
    pub fn refused(&self, e: ApiError) -> ApiError {
        match &self.token {
            Some(_) => ApiError::unauthenticated("the calendar token's maker may no longer read this calendar"),
            None => e,
        }
    }
}

/// The `token` parameter of a query string, if present.
fn query_token(parts: &Parts) -> Option<String> {
    let query = parts.uri.query()?;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned())
}

impl FromRequestParts<AppState> for CalendarCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(token) = query_token(parts) else {
            let caller = Caller::from_request_parts(parts, state).await?;
            return Ok(CalendarCaller { caller, token: None });
        };
        // Only calendar tokens go in a URL: anything else (a bearer JWT included) is refused.
        let record = if token.starts_with(PREFIX) { state.calendar_tokens.find(&token).await? } else { None };
        let Some(record) = record else {
            return Err(ApiError::unauthenticated("unknown or revoked calendar token"));
        };
        if record.expires_at.is_some_and(|e| e <= servicekit::clock::now().timestamp()) {
            return Err(ApiError::unauthenticated("this calendar token has expired"));
        }
        if !state.credentials.in_force(&record.owner_credential).await? {
            return Err(ApiError::unauthenticated("the calendar token's maker no longer holds that key or role"));
        }
        let (chapter, suspended) = resolve(state, record.owner_role).await?;
        let acting = Acting { grant: None, role: record.owner_role, chapter, suspended };
        let caller = Caller::single(record.owner_sub.clone(), record.owner_sub.parse().unwrap_or_default(), acting);
        Ok(CalendarCaller { caller, token: Some(record) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip() {
        let (h, c) = (Uuid::now_v7(), Uuid::now_v7());
        for role in [
            Role::Admin,
            Role::ChapterAdmin(c),
            Role::Coordinator(h),
            Role::Integrator(None),
            Role::Integrator(Some(c)),
        ] {
            let (name, scope) = role_parts(role);
            let row = Row {
                calendar_token_id: Uuid::nil(),
                calendar_kind: "carehome".into(),
                calendar_id: h,
                chapter_id: c,
                owner_role: name.into(),
                owner_scope: scope,
                created_at: 17,
                owner_sub: "u|with bars".into(),
                owner_credential: String::new(),
                expires_at: None,
            };
            let r = row.record().unwrap();
            assert_eq!(r.owner_role, role);
            assert_eq!(r.calendar, Calendar::CareHome(h));
            assert_eq!((r.chapter, r.created_at), (c, 17));
            assert_eq!(r.owner_sub, "u|with bars");
        }
        assert!(select!("").ends_with("FROM gateway_calendar_tokens "));
    }
}
