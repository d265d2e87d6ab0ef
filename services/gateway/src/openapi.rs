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
use utoipa::openapi::schema::AnyOfBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
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
    components.add_security_scheme(
        "calendar_token",
        SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
            "token",
            "A calendar token from `POST /v1/calendar-tokens`, for calendar applications that cannot send \
             `Authorization`; it opens only the calendar it was made for (401 for any other)",
        ))),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        for op in
            [&mut item.get, &mut item.put, &mut item.post, &mut item.patch, &mut item.delete].into_iter().flatten()
        {
            complete(path, op);
        }
    }
    doc
}

/// The syntax of the headers the gateway reads, as its extractors check it (400 otherwise).
///
/// `If-Match` and `Last-Event-ID` are written as `anyOf` a fixed value or a pattern rather
/// than as one pattern: the same set of strings, but a generator that cannot build a string
/// from the pattern (schemathesis draws header values from letters and digits only, and no
/// ETag or feed cursor is one) still finds a valid value in the fixed one.
fn header_schema(path: &str, name: &str) -> Option<Schema> {
    let text = |pattern: &str| ObjectBuilder::new().schema_type(Type::String).pattern(Some(pattern)).build();
    let exactly = |value: &str| ObjectBuilder::new().schema_type(Type::String).enum_values(Some([value])).build();
    match name {
        // `*` (any version), or a version this API sent as `ETag`.
        "if-match" => {
            Some(Schema::AnyOf(AnyOfBuilder::new().item(exactly("*")).item(text(r#"^"[1-9][0-9]{0,17}"$"#)).build()))
        }
        // 1 to 255 visible ASCII characters.
        "idempotency-key" => Some(Schema::Object(text("^[!-~]{1,255}$"))),
        // Empty (what an SSE client sends before it has seen an id: from the beginning), or
        // the `id` of an event of the stream: a feed cursor, or in the inbox's stream
        // `inbox.<n>`.
        "last-event-id" => {
            let id =
                if path == "/v1/me/notifications/stream" { r"^inbox\.[0-9]{1,19}$" } else { crate::views::FEED_CURSOR };
            Some(Schema::AnyOf(AnyOfBuilder::new().item(exactly("")).item(text(id)).build()))
        }
        _ => None,
    }
}

/// An optional form body (`request_body = Option<Form>`: the unsubscribe link's POST) is
/// documented by `required: false` alone: utoipa also writes it as `oneOf` the form or
/// `null`, which no form can be (JSON bodies keep it: `null` is no body there).
fn form_not_null(op: &mut Operation) {
    use utoipa::openapi::schema::SchemaType;
    let Some(RefOr::T(body)) = op.request_body.as_mut() else { return };
    let Some(RefOr::T(form)) = body.content.get_mut("application/x-www-form-urlencoded") else { return };
    let Some(RefOr::T(Schema::OneOf(one_of))) = &form.schema else { return };
    let is_null =
        |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
    let rest: Vec<RefOr<Schema>> = one_of.items.iter().filter(|s| !is_null(s)).cloned().collect();
    if let [only] = rest.as_slice() {
        form.schema = Some(only.clone());
    }
}

/// What an operation's own annotation leaves implicit.
fn complete(path: &str, op: &mut Operation) {
    form_not_null(op);
    for p in op.parameters.iter_mut().flatten() {
        if let RefOr::T(p) = p
            && p.parameter_in == ParameterIn::Header
            && let Some(schema) = header_schema(path, &p.name.to_ascii_lowercase())
        {
            p.schema = Some(RefOr::T(schema));
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
