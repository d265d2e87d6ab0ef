//! Following another service's event feed into a local read model: every batch of
//! envelopes is applied and the remote cursor checkpointed in one local transaction
//! (compare-and-set, so two runners never apply a batch twice). The follower reconnects
//! with backoff when the peer goes away and resumes from its checkpoint when it returns.

use std::sync::Arc;
use std::time::Duration;

use eventlog::{EventStore, Tx};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use samskab_proto::common::v1::{self as pb, event_feed_client::EventFeedClient};
use tokio::sync::watch;
use tonic::transport::Channel;

/// A read model fed by a remote feed.
pub trait RemoteProjection: Send + Sync + 'static {
    /// The checkpoint's name (one per remote feed and projection).
    fn name(&self) -> &str;

    /// Which of the feed's streams it needs (stream-id prefixes; empty: all).
    fn stream_prefixes(&self) -> Vec<String> {
        Vec::new()
    }

    /// Whether it needs the feed's internal events too (notify: grants and pilot links).
    fn with_internal(&self) -> bool {
        false
    }

    /// Applies one envelope inside the transaction that also moves the checkpoint.
    fn apply<'a>(
        &'a self,
        tx: &'a mut Tx<'_>,
        event: &'a pb::EventEnvelope,
    ) -> BoxFuture<'a, Result<(), eventlog::Error>>;

    /// Runs after a batch committed (cascades, wake-ups). Must be idempotent: after a
    /// crash between commit and this call, nothing re-runs it for that batch, so work that
    /// must not be lost is recorded by `apply` (an outbox) and finished here; and the
    /// batch's commit is relaxed, so after a power loss it may run again for a batch
    /// applied again.
    fn after_commit<'a>(&'a self, _batch: &'a [pb::EventEnvelope]) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// How a follower is doing, for readiness and lag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowStatus {
    /// Whether the feed's stream is open.
    pub connected: bool,
    /// The remote cursor last applied.
    pub cursor: Option<String>,
    /// Envelopes applied since start.
    pub applied: u64,
    /// Whether it has applied everything the feed held (for it) when it first connected:
    /// a reader of its facts may act on them (notify decides nothing before, so a ride
    /// cancelled while it was down is not reminded of). Stays true once reached.
    pub caught_up: bool,
}

/// Whether nothing is left to read after `after` for `projection` (one `ReadEvents` of one
/// event with the projection's filter: a filtered feed's head is no cursor of ours).
async fn nothing_after<P: RemoteProjection>(
    client: &mut EventFeedClient<Channel>,
    projection: &Arc<P>,
    after: Option<&str>,
) -> Result<bool, String> {
    let req = pb::ReadEventsRequest {
        after: after.unwrap_or_default().to_owned(),
        limit: 1,
        stream_prefixes: projection.stream_prefixes(),
        tenant: String::new(),
        with_internal: projection.with_internal(),
    };
    let page = client.read_events(req).await.map_err(|e| e.to_string())?.into_inner();
    Ok(page.events.is_empty())
}

/// Follows `client`'s feed forever into `projection`, publishing its status.
pub async fn follow<P: RemoteProjection>(
    store: EventStore,
    client: EventFeedClient<Channel>,
    projection: Arc<P>,
    status: watch::Sender<FollowStatus>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match follow_once(&store, client.clone(), &projection, &status).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => {
                tracing::warn!(projection = projection.name(), error = %e, "feed interrupted; reconnecting");
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
        status.send_modify(|s| s.connected = false);
        tokio::time::sleep(backoff).await;
    }
}

async fn follow_once<P: RemoteProjection>(
    store: &EventStore,
    mut client: EventFeedClient<Channel>,
    projection: &Arc<P>,
    status: &watch::Sender<FollowStatus>,
) -> Result<(), String> {
    let mut checkpoint = store.load_checkpoint(projection.name()).await.map_err(|e| e.to_string())?;
    let req = pb::SubscribeRequest {
        after: checkpoint.clone().unwrap_or_default(),
        stream_prefixes: projection.stream_prefixes(),
        tenant: String::new(),
        with_internal: projection.with_internal(),
    };
    let mut stream = client.subscribe(req).await.map_err(|e| e.to_string())?.into_inner().ready_chunks(200);
    let resumed = checkpoint.clone();
    let caught_up = status.borrow().caught_up || nothing_after(&mut client, projection, resumed.as_deref()).await?;
    status.send_modify(|s| {
        s.connected = true;
        s.cursor = resumed;
        s.caught_up = caught_up;
    });
    while let Some(batch) = stream.next().await {
        let batch: Vec<pb::EventEnvelope> = batch.into_iter().collect::<Result<_, _>>().map_err(|e| e.to_string())?;
        let Some(last) = batch.last() else { continue };
        let next = last.cursor.clone();
        let (p, expected, new) = (projection.clone(), checkpoint.clone(), next.clone());
        let applied = Arc::new(batch);
        let in_tx = applied.clone();
        // Relaxed (no wait for the disk, issue 22): what it writes is a copy of the peer's
        // durable log, so a batch that a power loss takes is read and applied again from the
        // checkpoint that went with it, and `after_commit` runs again (it is idempotent).
        let moved = store
            .transaction_relaxed(move |tx| {
                Box::pin(async move {
                    if !tx.compare_and_set_checkpoint(p.name(), expected.as_deref(), &new).await? {
                        return Ok(true);
                    }
                    for e in in_tx.iter() {
                        p.apply(tx, e).await?;
                    }
                    Ok(false)
                })
            })
            .await
            .map_err(|e| e.to_string())?;
        if moved {
            return Err("checkpoint moved under this follower (another runner); restarting from it".into());
        }
        projection.after_commit(&applied).await;
        checkpoint = Some(next.clone());
        let caught_up = status.borrow().caught_up || nothing_after(&mut client, projection, Some(&next)).await?;
        status.send_modify(|s| {
            s.cursor = Some(next);
            s.applied += applied.len() as u64;
            s.caught_up = caught_up;
        });
    }
    Err("feed ended".into())
}
