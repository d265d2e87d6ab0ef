//! The event streams' shared work and limits (`GET /v1/events/stream`): how many a caller,
//! and the gateway in all, may hold open (429 beyond), and one poller for all of them.
//!
//! A stream reads the feed from its own cursor until it is caught up, then waits. Instead
//! of each waiting stream asking the three services every 250 ms, one poller follows the
//! feed's end (from where the first caught-up stream stood) and wakes every stream when it
//! moved; each then reads from its own cursor (with its chapter's filter). The poller runs
//! only while streams are open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use servicekit::ErrorCode;
use tokio::sync::watch;

use crate::feed::{FeedCursor, FeedReader};
use crate::problem::ApiError;

/// How often the poller reads the feed's end.
pub const POLL_EVERY: Duration = Duration::from_millis(250);

/// The limits, as configured.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Streams one caller may hold open.
    pub per_caller: usize,
    /// Streams the gateway holds open in all.
    pub total: usize,
}

#[derive(Default)]
struct Open {
    per_caller: HashMap<String, usize>,
    total: usize,
}

/// The streams of one gateway.
pub struct Streams {
    feed: FeedReader,
    limits: Limits,
    open: Mutex<Open>,
    /// Bumped whenever the feed's end moved.
    moved: watch::Sender<u64>,
    /// Where the poller reads next; `None` while it does not run.
    end: Mutex<Option<FeedCursor>>,
}

/// An open stream's place; freed when dropped (the client went away or the stream ended).
pub struct Slot {
    streams: Arc<Streams>,
    key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().expect("not poisoned");
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_caller.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.per_caller.remove(&self.key);
            }
        }
    }
}

impl Streams {
    /// Over the services' feeds.
    pub fn new(feed: FeedReader, limits: Limits) -> Arc<Self> {
        let (moved, _) = watch::channel(0);
        Arc::new(Streams { feed, limits, open: Mutex::default(), moved, end: Mutex::new(None) })
    }

    /// A place for one more stream of the caller `key`, or 429 when it, or the gateway,
    /// holds as many as allowed.
    pub fn admit(self: &Arc<Self>, key: &str) -> Result<Slot, ApiError> {
        let mut open = self.open.lock().expect("not poisoned");
        let mine = open.per_caller.get(key).copied().unwrap_or(0);
        let refuse = |why: &str| {
            let mut e = ApiError::new(ErrorCode::RateLimited).detail(why.to_owned());
            e.retry_after = Some(10);
            Err(e)
        };
        if mine >= self.limits.per_caller {
            return refuse("too many open event streams for this caller: close one first");
        }
        if open.total >= self.limits.total {
            return refuse("the gateway holds as many event streams as it may: try again later");
        }
        open.total += 1;
        *open.per_caller.entry(key.to_owned()).or_default() += 1;
        Ok(Slot { streams: self.clone(), key: key.to_owned() })
    }

    /// Streams open now (all callers).
    pub fn open(&self) -> usize {
        self.open.lock().expect("not poisoned").total
    }

    /// A receiver that sees every move of the feed's end from now on.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.moved.subscribe()
    }

    /// A stream is caught up at `at`: unless the poller runs, it starts from there.
    pub fn caught_up(self: &Arc<Self>, at: &FeedCursor, stop: &servicekit::server::Stop) {
        let mut end = self.end.lock().expect("not poisoned");
        if end.is_some() {
            return;
        }
        *end = Some(at.clone());
        let (this, stopped) = (self.clone(), stop.stopped());
        tokio::spawn(async move {
            tokio::select! {
                () = this.poll() => {}
                () = stopped => *this.end.lock().expect("not poisoned") = None,
            }
        });
    }

    /// Follows the feed's end while any stream is open; returns when none is.
    async fn poll(&self) {
        loop {
            tokio::time::sleep(POLL_EVERY).await;
            if self.open() == 0 {
                // Stop; a stream that opens meanwhile starts a new poller when it catches up.
                let mut end = self.end.lock().expect("not poisoned");
                if self.open() == 0 {
                    *end = None;
                    return;
                }
            }
            let Some(at) = self.end.lock().expect("not poisoned").clone() else { return };
            // The services' heads (one indexed lookup each), not the events after `at`: the
            // poller only needs to know that the end moved; each woken stream reads its own.
            match self.feed.end().await {
                Ok(end) if end != at => {
                    *self.end.lock().expect("not poisoned") = Some(end);
                    self.moved.send_modify(|n| *n += 1);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = ?e, "the event streams' poller could not read the feed's end"),
            }
        }
    }
}
