//! Catch-up-then-live subscriptions. A background task reads pages after the cursor and
//! hands them over through a bounded channel (so reading overlaps processing); when it has
//! caught up it sleeps until a writer wakes it (in process, or by NOTIFY from another
//! process) or the poll interval passes.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::mpsc;

use crate::{Cursor, Error, EventStore, Filter, RecordedEvent};

/// A live stream of events from a cursor on. Dropping it stops the reader.
pub struct Subscription {
    rx: mpsc::Receiver<Result<RecordedEvent, Error>>,
}

impl Subscription {
    pub(crate) fn start(store: EventStore, after: Cursor, filter: Filter) -> Self {
        let page = store.options().subscription_page.max(1);
        let (tx, rx) = mpsc::channel(page * 2);
        tokio::spawn(follow(store, after, filter, page, tx));
        Subscription { rx }
    }
}

impl Stream for Subscription {
    type Item = Result<RecordedEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

async fn follow(
    store: EventStore,
    mut cursor: Cursor,
    filter: Filter,
    page: usize,
    tx: mpsc::Sender<Result<RecordedEvent, Error>>,
) {
    let poll = store.options().poll_interval;
    let mut wake = store.wake_receiver();
    // After a wake-up that found nothing readable yet (on PostgreSQL an older transaction
    // may still hold the commit back), look again soon rather than at the next poll.
    let mut quick_retries = 0u32;
    let mut failures = 0u32;
    // Whether this read follows a wake-up by a commit (rather than the start, a full page,
    // a retry or the poll): then the followers woken with it share the read.
    let mut woken = false;
    loop {
        wake.borrow_and_update();
        let read = if std::mem::take(&mut woken) {
            store.read_all_after_wake(cursor, &filter, page).await
        } else {
            store.read_all(cursor, &filter, page).await
        };
        let read = match read {
            Ok(p) => p,
            Err(e) if e.is_transient() => {
                failures += 1;
                tracing::warn!(error = %e, "subscription read failed; retrying");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(failures.min(50)))).await;
                continue;
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        failures = 0;
        let n = read.events.len();
        cursor = read.next;
        for e in read.events {
            if tx.send(Ok(e)).await.is_err() {
                return;
            }
        }
        if n == page {
            continue;
        }
        let wait = if n == 0 && quick_retries > 0 {
            quick_retries -= 1;
            Duration::from_millis(1 << (8 - quick_retries.min(8)))
        } else {
            quick_retries = 0;
            poll
        };
        tokio::select! {
            changed = wake.changed() => {
                if changed.is_err() {
                    return;
                }
                quick_retries = 8;
                woken = true;
            }
            _ = tokio::time::sleep(wait) => {}
            _ = tx.closed() => return,
        }
    }
}
