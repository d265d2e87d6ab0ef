//! Waiting on an observable outcome: the one poll loop of the test suites.
//!
//! Tests synchronise on what they can observe (a list shows the ride, a follower's
//! checkpoint reached the peer's head), never on a fixed sleep: a sleep is either too short
//! on a loaded machine or wasted time on an idle one.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// The timeout most waits use: generous, as the machine running the tests may be shared
/// and slow; a test that passes never waits that long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// What one look of [`eventually`] found: `Some`/`Ok`/`true` ends the wait (with the
/// value); `None`/`false` looks again, and so does `Err`, whose text (the last one) the
/// timeout's panic shows.
pub trait Outcome<T> {
    /// The value, or what was seen instead (if the check says).
    fn into_outcome(self) -> Result<T, Option<String>>;
}

impl<T> Outcome<T> for Option<T> {
    fn into_outcome(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl Outcome<()> for bool {
    fn into_outcome(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T, E: Display> Outcome<T> for Result<T, E> {
    fn into_outcome(self) -> Result<T, Option<String>> {
        self.map_err(|e| Some(e.to_string()))
    }
}

/// Looks with `check` until it finds its value (`Some`, `Ok` or `true`) and returns it. After
/// `timeout` it panics naming `what` and the last `Err` the check returned.
///
/// Looks quickly at first (5 ms apart) and backs off to 100 ms, so a test waits about as
/// long as the system takes and no more.
pub async fn eventually<T, C, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    C: Outcome<T>,
    F: FnMut() -> Fut,
    Fut: Future<Output = C>,
{
    let until = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        let last = match check().await.into_outcome() {
            Ok(v) => return v,
            Err(last) => last,
        };
        if Instant::now() >= until {
            match last {
                Some(last) => panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}"),
                None => panic!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_what_the_check_found_once_it_holds() {
        let mut calls = 0;
        let got = eventually("the third call", DEFAULT_TIMEOUT, || {
            calls += 1;
            let n = calls;
            async move { (n >= 3).then_some(n) }
        })
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 50ms waiting for a check that never holds")]
    async fn panics_naming_what_it_waited_for() {
        eventually("a check that never holds", Duration::from_millis(50), || async { None::<()> }).await;
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for an answer; last seen: 404 (call ")]
    async fn the_panic_shows_the_last_thing_seen() {
        let mut calls = 0;
        eventually("an answer", Duration::from_millis(30), || {
            calls += 1;
            let n = calls;
            async move { Err::<(), _>(format!("404 (call {n})")) }
        })
        .await;
    }
}
