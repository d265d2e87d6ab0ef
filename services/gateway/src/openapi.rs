//! The OpenAPI 3.1 document, generated from the handlers' annotations (utoipa): every
//! route is registered together with its description, so the two cannot drift apart.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Components, InfoBuilder, OpenApi};

/// Adds the document's info and the bearer security scheme.
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
    doc
}
