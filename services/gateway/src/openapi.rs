//! The OpenAPI 3.1 document, generated from the handlers' annotations (utoipa): every
//! route is registered together with its description, so the two cannot drift apart.
//!
//! The answers every route can give regardless of its handler (the error table of the API
//! contract: a malformed parameter, a missing token, a stalled request, the rate limit, an
//! unavailable service, a body that is too large or not JSON, a stale `If-Match`, an
//! idempotency key in flight or reused) and the headers on every response (`x-trace-id`,
//! `RateLimit-*`) are added here, once, from what each operation declares (parameters,
//! body, security), rather than repeated by hand on ~80 handlers.

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Components, InfoBuilder, ObjectBuilder, OpenApi, RefOr, Schema, Type};

/// The media type of every error answer (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Adds the document's info, the bearer security scheme, the answers every operation
/// can give and the headers of every response.
pub fn finish(mut doc: OpenApi) -> OpenApi {
    doc.info = InfoBuilder::new()
        .title("Samskab API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "REST API of Samskab: volunteer-driven trishaw rides for care-home residents. \
             Errors are application/problem+json with a stable `code`. Every POST accepts Idempotency-Key.",
        ))
        .build();
    let components = doc.components.get_or_insert_with(Components::new);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
    );
    for item in doc.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete].into_iter().flatten() {
            complete(op);
        }
    }
    doc
}

/// The syntax of the headers the gateway reads, as its extractors check it (400 otherwise).
fn header_pattern(name: &str) -> Option<&'static str> {
    match name {
        // A version this API sent as `ETag`, or `*`.
        "if-match" => Some(r#"^(\*|"[1-9][0-9]{0,17}")$"#),
        // 1 to 255 visible ASCII characters.
        "idempotency-key" => Some("^[!-~]{1,255}$"),
        "last-event-id" => Some(crate::views::FEED_CURSOR),
        _ => None,
    }
}

/// What an operation's own annotation leaves implicit.
fn complete(op: &mut Operation) {
    for p in op.parameters.iter_mut().flatten() {
        if let RefOr::T(p) = p
            && p.parameter_in == ParameterIn::Header
            && let Some(pattern) = header_pattern(&p.name.to_ascii_lowercase())
        {
            p.schema = Some(RefOr::T(Schema::Object(
                ObjectBuilder::new().schema_type(Type::String).pattern(Some(pattern)).build(),
            )));
        }
    }
    let params: Vec<(ParameterIn, String)> = op
        .parameters
        .iter()
        .flatten()
        .filter_map(|p| match p {
            RefOr::T(p) => Some((p.parameter_in.clone(), p.name.to_ascii_lowercase())),
            RefOr::Ref(_) => None,
        })
        .collect();
    let has = |place: ParameterIn, name: &str| params.iter().any(|(p, n)| *p == place && n == name);
    let has_path_id = params.iter().any(|(p, _)| *p == ParameterIn::Path);
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_body = op.request_body.is_some();

    let mut common: Vec<(&str, &str)> = Vec::new();
    if !params.is_empty() || has_body {
        common.push(("400", "Malformed: a parameter or the body does not fit its schema (`malformed`, `validation`)"));
    }
    if secured {
        common.push(("401", "Missing, malformed, expired or wrongly signed token (`unauthenticated`)"));
    }
    if has_path_id {
        common.push(("404", "Unknown, or not visible to the caller (`not-found`)"));
    }
    common.push(("408", "The request took too long to arrive or to be answered (`timeout`)"));
    if has(ParameterIn::Header, "idempotency-key") {
        common.push(("409", "A request with this idempotency key is still running (`idempotency-in-flight`)"));
    }
    if has(ParameterIn::Header, "if-match") {
        common.push(("412", "`If-Match` does not match; `ETag` carries the current version (`precondition-failed`)"));
    }
    if has_body {
        common.push(("413", "The body is over 1 MiB (`too-large`)"));
        common.push(("415", "The body is not `application/json` (`unsupported-media-type`)"));
    }
    if has(ParameterIn::Header, "idempotency-key") {
        common.push(("422", "This idempotency key was used with another request (`idempotency-key-reused`)"));
    }
    common.push(("429", "Rate limited; `Retry-After` says when to retry (`rate-limited`)"));
    common.push(("503", "A backing service is unavailable; retry (`unavailable`)"));
    for (status, description) in common {
        op.responses.responses.entry(status.to_owned()).or_insert_with(|| RefOr::T(problem(description)));
    }

    for (status, response) in op.responses.responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        if status.starts_with('4') || status.starts_with('5') {
            as_problem(response);
        }
        add_headers(response, status);
    }
}

/// A problem+json answer.
fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new().schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("Problem")))).build(),
        )
        .build()
}

/// Error answers are `application/problem+json`, whatever the annotation said.
fn as_problem(response: &mut Response) {
    if let Some(content) = response.content.shift_remove("application/json") {
        response.content.insert(PROBLEM_JSON.to_owned(), content);
    }
    if response.description.is_empty() {
        response.description = "A problem (RFC 9457) with a stable `code`".to_owned();
    }
}

/// Every `/v1` response carries `x-trace-id` and the rate-limit headers; a 429 also
/// `Retry-After`, a 412 the current `ETag`.
fn add_headers(response: &mut Response, status: &str) {
    let integer = || Schema::Object(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).build());
    let string = || Schema::Object(ObjectBuilder::new().schema_type(Type::String).build());
    let mut headers = vec![
        ("x-trace-id", "The W3C trace id of this request", string()),
        ("RateLimit-Limit", "Requests per minute allowed to this token", integer()),
        ("RateLimit-Remaining", "Requests left in the current window", integer()),
        ("RateLimit-Reset", "Seconds until the window is full again", integer()),
    ];
    if status == "429" {
        headers.push(("Retry-After", "Seconds to wait before retrying", integer()));
    }
    if status == "412" {
        headers.push(("ETag", "The object's current version", string()));
    }
    for (name, description, schema) in headers {
        response
            .headers
            .entry(name.to_owned())
            .or_insert_with(|| HeaderBuilder::new().description(Some(description)).schema(Some(schema)).build().into());
    }
}
