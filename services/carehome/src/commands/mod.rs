//! Every care-home command as pure domain: each aggregate's validation, its state folded
//! from its stream, and a decider per command, `decide(state, command) -> events` or a
//! `DomainError` (no I/O, no keys, no clock). The executor (`servicekit::executor`, through
//! `servicekit::aggregate`) loads the state and appends the events; see `crate::grpc`.

pub mod bikes;
pub mod carehomes;
pub mod chapters;
pub mod residents;
