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

/// What no decider may name: I/O, keys, the clock, the transport.
#[cfg(test)]
pub(crate) const IMPURE: &[&str] = &[
    "async ",
    ".await",
    "EventStore",
    "KeyStore",
    "keystore",
    "eventlog",
    "clock::",
    "Utc::now",
    "tokio",
    "servicekit",
    "tonic",
];

#[cfg(test)]
mod purity {
    #[test]
    fn no_decider_is_async_or_touches_a_store_a_key_or_the_clock() {
        let sources = [
            ("commands/booking.rs", include_str!("booking.rs")),
            ("commands/requests.rs", include_str!("requests.rs")),
            ("commands/rides.rs", include_str!("rides.rs")),
            ("commands/schedule.rs", include_str!("schedule.rs")),
            ("commands/weather.rs", include_str!("weather.rs")),
            ("rules.rs", include_str!("../rules.rs")),
            ("schedule.rs", include_str!("../schedule.rs")),
            ("rides.rs", include_str!("../rides.rs")),
            ("requests.rs", include_str!("../requests.rs")),
        ];
        for (file, source) in sources {
            for word in super::IMPURE {
                assert!(!source.contains(word), "{file} names `{word}`: deciders are pure");
            }
        }
    }
}
