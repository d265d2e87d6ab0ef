//! (being written)

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// The routes of this area.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
