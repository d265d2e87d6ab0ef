//! The `samskab` binary's own tests: real processes on free ports (the all-in-one and the
//! separate services), a PostgreSQL of the test's own crashed under load, and the
//! deployment files checked against the binary's configuration.
//!
//! One test binary with a module per area (each binary is large in a debug build; one per
//! file filled the CI machine's disk). nextest still runs every test in its own process.

mod support;

mod binary;
mod deploy;
mod erasure;
mod people;
mod pg_restart;
mod reseal;
mod roles;
mod tls;
