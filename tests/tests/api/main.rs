//! The end-to-end suite: the real system on free ports, driven over HTTP only.
//!
//! One test binary with a module per area, not one binary per file: each binary links the
//! whole system (~150 MB in a debug build), and a dozen of them filled the CI machine's
//! disk. nextest still runs every test in its own process, so tests share no state.
//! Run one area with `cargo nextest run -p samskab-e2e --test api rides::`.

// Each area declares its tests with `testkit::both_backends!`: `sqlite::name` and
// `postgres::name`, given a started `e2e::System` (`setup = e2e::System::start;`), what
// another setup returns, or the `testkit::TestDb` itself.

mod authz;
mod bad_input;
mod calendars;
mod cascades;
mod claims;
mod corrections;
mod erasure;
mod feed;
mod fuzz;
mod http;
mod journeys;
mod notifications;
mod people;
mod reach;
mod records;
mod reports;
mod riders;
mod rides;
mod series;
mod stats;
mod tracing;
mod waitlist;
