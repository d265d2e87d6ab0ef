//! What the API answers with: one JSON shape per resource (ids as `<resource>_id`, times
//! RFC 3339 in UTC, durations in whole minutes), built from the services' messages, and
//! the helpers every handler uses to answer (201 with `Location`, `ETag`, pages).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Where the next page starts; null at the end.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page; an empty cursor means the end.
    pub fn new(items: Vec<T>, next_cursor: String) -> Self {
        Page { items, next_cursor: (!next_cursor.is_empty()).then_some(next_cursor) }
    }
}

/// `?limit=&cursor=` of every list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Where to continue.
    #[param(pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub cursor: Option<String>,
}

impl PageParams {
    /// The limit, refusing values over 500 (400).
    pub fn limit(&self) -> Result<u32, crate::problem::ApiError> {
        match self.limit {
            None => Ok(50),
            Some(n) if (1..=500).contains(&n) => Ok(n),
            Some(_) => Err(crate::problem::ApiError::invalid("/limit", "must be between 1 and 500")),
        }
    }
}

/// A single object with its `ETag` (the version of its stream).
pub struct Versioned<T>(pub T, pub u64);

impl<T: Serialize> IntoResponse for Versioned<T> {
    fn into_response(self) -> Response {
        let mut r = axum::Json(self.0).into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", self.1)) {
            r.headers_mut().insert(header::ETAG, v);
        }
        r
    }
}

/// A created object: 201, `Location`, `ETag`.
pub struct Created<T>(pub String, pub T, pub u64);

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        let mut r = (StatusCode::CREATED, axum::Json(self.1)).into_response();
        if let Ok(v) = HeaderValue::from_str(&self.0) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", self.2)) {
            r.headers_mut().insert(header::ETAG, v);
        }
        r
    }
}

/// A protobuf time as RFC 3339 UTC (`None` when unset).
pub fn time(t: &Option<prost_types::Timestamp>) -> Option<String> {
    t.as_ref().and_then(samskab_proto::time::from_proto).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// `None` for an empty string.
pub fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Parses an RFC 3339 time of a body or query field (any offset; stored as UTC).
pub fn parse_time(field: &str, value: &str) -> Result<prost_types::Timestamp, crate::problem::ApiError> {
    chrono::DateTime::parse_from_rfc3339(value).map(|t| samskab_proto::time::to_proto(t.to_utc())).map_err(|_| {
        crate::problem::ApiError::invalid(field, "must be an RFC 3339 time such as 2027-05-03T10:00:00+02:00")
    })
}

/// The schema of a period bound that takes a date (local midnight in the chapter's zone)
/// or an RFC 3339 time.
pub fn date_or_time() -> utoipa::openapi::Schema {
    use utoipa::openapi::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    let of = |format| ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(format)));
    utoipa::openapi::Schema::OneOf(
        utoipa::openapi::schema::OneOfBuilder::new()
            .description(Some("A date (`YYYY-MM-DD`) or an RFC 3339 time"))
            .item(of(KnownFormat::Date))
            .item(of(KnownFormat::DateTime))
            .build(),
    )
}

/// A cursor of the event feed: one event-log cursor per service.
pub const FEED_CURSOR: &str = "^b\\.c1\\.[0-9a-f]{1,15}\\.[0-9a-f]{1,15}~c\\.c1\\.[0-9a-f]{1,15}\\.[0-9a-f]{1,15}~v\\.c1\\.[0-9a-f]{1,15}\\.[0-9a-f]{1,15}$";
/// An IANA time zone name.
pub fn timezone() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .description(Some("An IANA time zone name, e.g. `Europe/Copenhagen`"))
        .enum_values(Some(chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())))
        .build()
}

/// An IANA time zone name, or null for the default.
pub fn optional_timezone() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            utoipa::openapi::Type::String,
            utoipa::openapi::Type::Null,
        ]))
        .description(Some("An IANA time zone name, e.g. `Europe/Copenhagen`; absent or null: the chapter's"))
        .enum_values(Some(chrono_tz::TZ_VARIANTS.iter().map(|tz| Some(tz.name())).chain([None])))
        .build()
}
