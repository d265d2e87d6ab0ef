//! The end-to-end suite: the real system on free ports, driven over HTTP only.
//!
//! One test binary with a module per area, not one binary per file: each binary links the
//! whole system (~150 MB in a debug build), and a dozen of them filled the CI machine's
//! disk. nextest still runs every test in its own process, so tests share no state.
//! Run one area with `cargo nextest run -p samskab-e2e --test api rides::`.

/// Declares each named test twice, `sqlite::name` and `postgres::name`; the PostgreSQL one
/// runs against `SAMSKAB_TEST_PG_URL` (required under CI=true; see testkit).
///
/// - `both_backends!(a, b)`: each test gets a started [`e2e::System`];
/// - `both_backends!(with start: a, b)`: each gets what `start(TestDb)` returns;
/// - `both_backends!(raw: a, b)`: each gets the [`testkit::TestDb`] itself.
macro_rules! both_backends {
    (raw: $($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(testkit::TestDb::sqlite()).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some(db) = testkit::TestDb::postgres() else { return };
                super::$name(db).await
            })*
        }
    };
    (with $start:path: $($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name($start(testkit::TestDb::sqlite()).await).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some(db) = testkit::TestDb::postgres() else { return };
                super::$name($start(db).await).await
            })*
        }
    };
    ($($name:ident),* $(,)?) => {
        both_backends!(with e2e::System::start: $($name),*);
    };
}

mod authz;
mod bad_input;
mod calendars;
mod cascades;
mod claims;
mod feed;
mod fuzz;
mod http;
mod journeys;
mod reports;
mod rides;
mod stats;
mod tracing;
