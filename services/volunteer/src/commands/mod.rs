//! Every volunteer command as pure domain: the pilot's validation, its state folded from
//! its stream, and `decide(state, command) -> events` or a `DomainError` (no I/O, no keys,
//! no clock). The executor (`servicekit::executor`) loads the state and appends the events.

pub mod pilots;
