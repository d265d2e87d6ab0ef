//! What the services that keep people's access share: the proto form of an invitation,
//! and waiting until a read model has applied everything committed (a grant made or
//! removed a moment ago, on any replica, is then seen).

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::access::Invitation;
use eventlog::EventStore;
use samskab_proto::common::v1 as pb;
use uuid::Uuid;

use crate::{ServiceError, ServiceResult};

fn time(t: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(samskab_proto::time::to_proto(t))
}

fn opt(id: Option<Uuid>) -> String {
    id.map(|i| i.to_string()).unwrap_or_default()
}

/// The proto form of an invitation at `now` (its status depends on the time).
pub fn invitation_proto(i: &Invitation, version: u64, now: DateTime<Utc>) -> pb::Invitation {
    pb::Invitation {
        invitation_id: i.invitation_id.to_string(),
        role: i.role.clone(),
        chapter_id: opt(i.chapter_id),
        carehome_id: opt(i.carehome_id),
        pilot_id: opt(i.pilot_id),
        issued_at: time(i.issued_at),
        expires_at: time(i.expires_at),
        status: i.status(now).to_owned(),
        issued_by: i.issued_by.clone(),
        redeemed_by: opt(i.redeemed.map(|r| r.0)),
        role_grant_id: opt(i.redeemed.map(|r| r.1)),
        version,
    }
}

/// Whether the projection `name` has applied every event committed so far. Measured
/// against the last committed event, not the readable head: on PostgreSQL the head stays
/// behind an event committed just now while any older transaction in the cluster is open.
/// The projection must read every event (no filter), or its checkpoint stops short.
pub async fn caught_up(store: &EventStore, name: &str) -> Result<bool, eventlog::Error> {
    let head = store.last_committed().await?;
    let checkpoint = store.load_checkpoint(name).await?;
    Ok(head == eventlog::Cursor::START || checkpoint.and_then(|c| c.parse().ok()) >= Some(head))
}

/// Waits until the projection `name` has caught up, up to 8 s (under the gateway's
/// deadline); `unavailable` naming `what` otherwise.
pub async fn wait_caught_up(store: &EventStore, name: &str, what: &str) -> ServiceResult<()> {
    for _ in 0..320 {
        if caught_up(store, name).await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(ServiceError::Unavailable(format!("the {what} read model is behind")))
}
