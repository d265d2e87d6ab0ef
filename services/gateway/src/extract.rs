//! Request extractors that refuse bad input the way the contract says: a JSON body must
//! be `application/json` (415), at most 1 MiB (413), valid JSON (400 `malformed`) and fit
//! its schema with no unknown fields (400 `validation`, naming the field as a JSON
//! pointer; axum's default would be 422). Query strings likewise; `Idempotency-Key` and
//! `If-Match` headers are read here too.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use servicekit::ErrorCode;

use crate::AppState;
use crate::caller::Caller;
use crate::problem::ApiError;

/// The largest body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// A JSON body deserialised into `T`.
#[derive(Debug, Clone)]
pub struct Body<T>(pub T);

/// The JSON pointer of a serde path (`ride_hours[0].opens` → `/ride_hours/0/opens`).
fn pointer(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for seg in path.iter() {
        use serde_path_to_error::Segment;
        match seg {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push('/');
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Unknown => out.push_str("/?"),
        }
    }
    out
}

/// The field a serde message names as missing (the path stops at its parent), if any.
fn named_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// Rewrites every whole number written with a fraction or exponent (`13.0`, `1e3`) as the
/// integer it is: JSON (RFC 8259) has one number type, and JSON Schema counts `13.0` as an
/// integer, so an integer field takes it. `1.5` stays a fraction and is still refused.
fn whole_numbers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            let Some(f) = n.as_f64().filter(|f| f.is_finite() && f.fract() == 0.0) else { return };
            // 2^64 and -2^63 are exact in f64; beyond them the number stays as it was.
            if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                *n = (f as u64).into();
            } else if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
                *n = (f as i64).into();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(fields) => fields.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// Reads `bytes` as JSON into `T`, mapping errors to problems with JSON pointers.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let mut result = serde_path_to_error::deserialize::<_, T>(de);
    // serde refuses `13.0` for an integer; read the body again with whole numbers as integers.
    if let Err(err) = &result
        && err.inner().to_string().starts_with("invalid type: floating point")
        && let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes)
    {
        whole_numbers(&mut value);
        result = serde_path_to_error::deserialize::<_, T>(value);
    }
    match result {
        Ok(v) => Ok(v),
        Err(err) => {
            let mut field = pointer(err.path());
            let inner = err.into_inner();
            let message = inner.to_string();
            let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
            if inner.is_syntax() || inner.is_eof() {
                return Err(ApiError::malformed("", format!("not valid JSON: {message}")));
            }
            if let Some(name) = named_field(&message) {
                field.push('/');
                field.push_str(name);
            }
            // An empty path is the whole body: RFC 6901's pointer of the root is "".
            Err(ApiError::invalid(field, message))
        }
    }
}

/// Whether the request's `Content-Type` is JSON (`application/json` or `application/*+json`).
fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")))
}

/// Reads the body, at most [`MAX_BODY`] bytes (413 beyond).
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ErrorCode::TooLarge)
        } else {
            ApiError::malformed("", "the body could not be read")
        }
    })
}

/// Refuses a body that is valid JSON but not an object (every body of this API is one;
/// serde would otherwise read a struct from an array of its fields in order).
fn require_object(bytes: &[u8]) -> Result<(), ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        return Ok(());
    }
    parse_json::<serde_json::Value>(bytes)?;
    Err(ApiError::invalid("", "the body must be a JSON object"))
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(ApiError::new(ErrorCode::UnsupportedMediaType).detail("send the body as application/json"));
        }
        let bytes = read_body(req, state).await?;
        require_object(&bytes)?;
        parse_json(&bytes).map(Body)
    }
}

/// A body that may be left out: nothing at all is `None`; anything else is read as
/// [`Body`] (`application/json`, 415 otherwise; an object fitting `T`).
#[derive(Debug, Clone)]
pub struct MaybeBody<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for MaybeBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = is_json(&req);
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MaybeBody(None));
        }
        if !json {
            return Err(ApiError::new(ErrorCode::UnsupportedMediaType).detail("send the body as application/json"));
        }
        // JSON `null` is "no body" too: the optional body's schema allows it.
        if std::str::from_utf8(&bytes).is_ok_and(|t| t.trim() == "null") {
            return Ok(MaybeBody(None));
        }
        require_object(&bytes)?;
        // Not JSON at all is `malformed` before any field is judged.
        parse_json::<serde_json::Value>(&bytes)?;
        parse_json(&bytes).map(|t| MaybeBody(Some(t)))
    }
}

/// The body of a command that takes none: nothing at all, or an empty JSON object `{}`.
/// Anything else is refused like any body (415 not JSON, 413 too large, 400 `malformed`,
/// 400 `validation` naming an unknown field), so a typo is never silently ignored.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBody;

impl<S: Send + Sync> FromRequest<S> for NoBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = is_json(&req);
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(NoBody);
        }
        if !json {
            return Err(ApiError::new(ErrorCode::UnsupportedMediaType).detail("send the body as application/json"));
        }
        require_object(&bytes)?;
        match parse_json::<serde_json::Map<String, serde_json::Value>>(&bytes)?.keys().next() {
            None => Ok(NoBody),
            Some(k) => Err(ApiError::invalid(
                format!("/{}", k.replace('~', "~0").replace('/', "~1")),
                format!("unknown field `{k}`: this request takes no fields"),
            )),
        }
    }
}

/// A body type that can be sent as a JSON merge patch: which of its fields `null` clears.
pub trait Patchable: DeserializeOwned {
    /// The fields `null` clears; `null` on any other field is 400.
    const CLEARABLE: &'static [&'static str];
}

/// A JSON merge patch body (RFC 7396): `Content-Type: application/merge-patch+json` only
/// (415 otherwise), an object, no unknown field (400 naming it); a field left out keeps its
/// value, `null` clears one of [`Patchable::CLEARABLE`] (listed in `cleared`) and is 400
/// on any other field.
#[derive(Debug, Clone)]
pub struct MergePatch<T> {
    /// The fields sent with a value.
    pub patch: T,
    /// The fields sent as `null`.
    pub cleared: Vec<String>,
}

impl<T> MergePatch<T> {
    /// Whether `field` was sent as `null`.
    pub fn clears(&self, field: &str) -> bool {
        self.cleared.iter().any(|c| c == field)
    }
}

impl<T: Patchable, S: Send + Sync> FromRequest<S> for MergePatch<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let merge_patch = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/merge-patch+json"));
        if !merge_patch {
            return Err(ApiError::new(ErrorCode::UnsupportedMediaType)
                .detail("send the body as application/merge-patch+json (RFC 7396)"));
        }
        let bytes = read_body(req, state).await?;
        require_object(&bytes)?;
        let mut fields = parse_json::<serde_json::Map<String, serde_json::Value>>(&bytes)?;
        let mut cleared = Vec::new();
        let nulls: Vec<String> = fields.iter().filter(|(_, v)| v.is_null()).map(|(k, _)| k.clone()).collect();
        for k in nulls {
            if !T::CLEARABLE.contains(&k.as_str()) {
                return Err(ApiError::invalid(
                    format!("/{}", k.replace('~', "~0").replace('/', "~1")),
                    "must not be null: this field cannot be cleared",
                ));
            }
            fields.remove(&k);
            cleared.push(k);
        }
        let rest = serde_json::to_vec(&serde_json::Value::Object(fields))
            .map_err(|_| ApiError::malformed("", "the body could not be read"))?;
        let patch = parse_json::<T>(&rest)?;
        Ok(MergePatch { patch, cleared })
    }
}

/// A query string deserialised into `T` (unknown parameters refused).
#[derive(Debug, Clone)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        // A parameter is either left out or has a value: `?cursor=` is refused (400), not
        // read as "absent", so a client that lost a value hears about it.
        if let Some((name, _)) = form_urlencoded::parse(query.as_bytes()).find(|(_, v)| v.is_empty()) {
            return Err(ApiError::invalid(
                format!("/{}", name.replace('~', "~0").replace('/', "~1")),
                "must not be empty (leave the parameter out instead)",
            ));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize::<_, T>(de).map(Params).map_err(|err| {
            let mut field = pointer(err.path());
            let message = err.into_inner().to_string();
            if let Some(name) = named_field(&message) {
                field.push('/');
                field.push_str(name);
            }
            ApiError::invalid(if field.is_empty() { "/".into() } else { field }, message)
        })
    }
}

/// The `Idempotency-Key` header.
#[derive(Debug, Clone, Default)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get("idempotency-key") {
            None => Ok(IdempotencyKey(None)),
            Some(v) => {
                let s = v
                    .to_str()
                    .ok()
                    .filter(|s| !s.is_empty() && s.len() <= 255 && s.chars().all(|c| c.is_ascii_graphic()));
                s.map(|s| IdempotencyKey(Some(s.to_owned())))
                    .ok_or_else(|| ApiError::invalid("/Idempotency-Key", "must be 1 to 255 visible ASCII characters"))
            }
        }
    }
}

/// The `If-Match` header: the version the caller expects (`"7"`); `*` or none: any.
#[derive(Debug, Clone, Copy, Default)]
pub struct IfMatch(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(v) = parts.headers.get(header::IF_MATCH) else { return Ok(IfMatch(None)) };
        let s = v.to_str().unwrap_or("").trim();
        if s == "*" {
            return Ok(IfMatch(None));
        }
        s.strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| *n > 0)
            .map(|n| IfMatch(Some(n)))
            .ok_or_else(|| ApiError::invalid("/If-Match", "must be an ETag this API sent, such as \"3\""))
    }
}

/// What every command carries, read once from the request: the caller, its
/// `Idempotency-Key` and `If-Match`, and the route (method and path, lowercased) the key is
/// scoped to. [`Command::context`] makes the `CommandContext` the services read.
#[derive(Debug, Clone)]
pub struct Command {
    /// Who.
    pub caller: Caller,
    /// The `Idempotency-Key`, if sent.
    pub key: Option<String>,
    /// The `If-Match` version, if sent.
    pub if_match: Option<u64>,
    /// `POST /v1/rides/<id>/cancel`.
    pub route: String,
    /// Whether an `If-Match` header was sent at all (`*` included).
    pub if_match_sent: bool,
}

impl Command {
    /// The services' command context: the caller as actor, the key scoped to the route,
    /// the expected version.
    pub fn context(&self) -> Option<samskab_proto::common::v1::CommandContext> {
        crate::clients::context(&self.caller, &self.route, self.key.as_deref(), self.if_match)
    }

    /// A correction requires `If-Match` (RFC 6585: 428 without), so that it never
    /// overwrites a change its author has not seen.
    pub fn require_if_match(&self) -> Result<(), ApiError> {
        if self.if_match_sent {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::PreconditionRequired)
                .detail("send If-Match with the ETag of the version you are changing (read it with GET first)"))
        }
    }

    /// The same without an expected version: for a command whose `If-Match` names another
    /// object than the stream the service writes (the gateway checks it itself).
    pub fn context_checked_here(&self) -> Option<samskab_proto::common::v1::CommandContext> {
        crate::clients::context(&self.caller, &self.route, self.key.as_deref(), None)
    }
}

impl FromRequestParts<AppState> for Command {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let IdempotencyKey(key) = IdempotencyKey::from_request_parts(parts, state).await?;
        let IfMatch(if_match) = IfMatch::from_request_parts(parts, state).await?;
        let path = parts.extensions.get::<OriginalUri>().map_or_else(|| parts.uri.path(), |u| u.0.path());
        let route = format!("{} {}", parts.method, path.to_ascii_lowercase());
        let if_match_sent = parts.headers.contains_key(header::IF_MATCH);
        Ok(Command { caller, key, if_match, route, if_match_sent })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Hours {
        weekday: String,
        opens: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Home {
        name: String,
        seats: u32,
        ride_hours: Vec<Hours>,
    }

    fn field(body: &str) -> (ErrorCode, String) {
        let e = parse_json::<Home>(body.as_bytes()).unwrap_err();
        (e.code, e.errors.first().map(|f| f.field.clone()).unwrap_or_default())
    }

    #[test]
    fn schema_errors_name_the_field_as_a_json_pointer() {
        assert_eq!(field(r#"{"name":"x","seats":"two","ride_hours":[]}"#), (ErrorCode::Validation, "/seats".into()));
        assert_eq!(field(r#"{"name":"x","seats":2}"#), (ErrorCode::Validation, "/ride_hours".into()));
        assert_eq!(
            field(r#"{"name":"x","seats":2,"ride_hours":[{"weekday":"monday"}]}"#),
            (ErrorCode::Validation, "/ride_hours/0/opens".into())
        );
        assert_eq!(
            field(r#"{"name":"x","seats":2,"ride_hours":[],"colour":"red"}"#),
            (ErrorCode::Validation, "/colour".into())
        );
        assert_eq!(field(r#"{"name":"x","#).0, ErrorCode::Malformed);
        assert_eq!(field(r#"[1,2]"#).0, ErrorCode::Validation);
    }

    #[test]
    fn whole_numbers_are_integers_and_fractions_are_refused() {
        let home: Home = parse_json(br#"{"name":"x","seats":13.0,"ride_hours":[]}"#).unwrap();
        assert_eq!(home.seats, 13);
        let home: Home = parse_json(br#"{"name":"x","seats":1e1,"ride_hours":[]}"#).unwrap();
        assert_eq!(home.seats, 10);
        assert_eq!(field(r#"{"name":"x","seats":1.5,"ride_hours":[]}"#), (ErrorCode::Validation, "/seats".into()));
        assert_eq!(field(r#"{"name":"x","seats":-1.0,"ride_hours":[]}"#), (ErrorCode::Validation, "/seats".into()));
        assert_eq!(field(r#"{"name":"x","seats":1e30,"ride_hours":[]}"#), (ErrorCode::Validation, "/seats".into()));
    }
}

/// Path parameters (ids) deserialised into `T`; a malformed one is 400 naming it
/// (`/id`, `/resident_id`).
#[derive(Debug, Clone)]
pub struct Ids<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Ids<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::Path;
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(t)) => Ok(Ids(t)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let field = match e.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. } | ErrorKind::DeserializeError { key, .. } => {
                        format!("/{key}")
                    }
                    _ => "/id".to_owned(),
                };
                Err(ApiError::invalid(field, "must be a UUID"))
            }
            Err(_) => Err(ApiError::not_found()),
        }
    }
}
