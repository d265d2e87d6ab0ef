//! The `/v1` resources, one module per area. Every handler authenticates the caller,
//! checks the object against the caller's scope (404 when it may not read it, 403 when it
//! may read it but not act), then calls a service.

pub mod api_keys;
pub mod audit;
pub mod availability;
pub mod bikes;
pub mod calendars;
pub mod carehomes;
pub mod chapters;
pub mod events;
pub mod exports;
pub mod notifications;
pub mod people;
pub mod pilots;
pub mod preferences;
pub mod push;
pub mod reach;
pub mod reports;
pub mod requests;
pub mod residents;
pub mod rides;
pub mod series;
pub mod stats;
pub mod weather;
pub mod webhooks;

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// Every `/v1` route with its OpenAPI description.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(chapters::routes())
        .merge(audit::routes())
        .merge(calendars::routes())
        .merge(carehomes::routes())
        .merge(bikes::routes())
        .merge(residents::routes())
        .merge(pilots::routes())
        .merge(availability::routes())
        .merge(rides::routes())
        .merge(series::routes())
        .merge(stats::routes())
        .merge(requests::routes())
        .merge(weather::routes())
        .merge(events::routes())
        .merge(webhooks::routes())
        .merge(reports::routes())
        .merge(exports::routes())
        .merge(reach::routes())
        .merge(people::routes())
        .merge(notifications::routes())
        .merge(preferences::routes())
        .merge(push::routes())
        .merge(api_keys::routes())
}
