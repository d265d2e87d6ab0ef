//! The booking service's integration tests: the service on real gRPC over sockets, with
//! its peers, on SQLite and PostgreSQL.
//!
//! One test binary with a module per area: each binary links the whole service, and one
//! per file filled the CI machine's disk. nextest still runs every test in its own process.
//! Run one area with `cargo nextest run -p samskab-booking --test service invariants::`.

#[macro_use]
mod common;

mod asof;
mod cascades;
mod claims;
mod clock;
mod invariants;
mod lifecycle;
mod offers;
mod privacy;
mod processes;
mod rebuild;
mod rules_props;
mod series;
mod spawn;
mod waitlist;
