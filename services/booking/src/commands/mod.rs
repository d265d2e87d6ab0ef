//! Every booking command as a pure decider, `decide(input, command) -> Decision` of events
//! per stream, or a `DomainError`: no I/O, no clock, no keys. The executor
//! (`servicekit::executor`) loads the input ([`crate::service`] says what each command
//! reads), appends the decision at the versions read, and decides again after a lost race.

pub mod booking;
pub mod requests;
pub mod rides;
pub mod schedule;
pub mod weather;

#[cfg(test)]
mod tests;
