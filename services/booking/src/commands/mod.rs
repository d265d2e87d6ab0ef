//! Every booking command as a pure decider, `decide(input, command) -> Decision` of events
//! per stream, or a `DomainError`: no I/O, no clock, no keys. The executor
//! (`servicekit::executor`) loads the input ([`crate::service`] says what each command
//! reads), appends the decision at the versions read, and decides again after a lost race.

pub mod booking;
pub mod record;
pub mod requests;
pub mod rides;
pub mod schedule;
pub mod series;
pub mod weather;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod purity {
    #[test]
    fn no_decider_is_async_or_touches_a_store_a_key_or_the_clock() {
        let sources = [
            ("commands/booking.rs", include_str!("booking.rs")),
            ("commands/record.rs", include_str!("record.rs")),
            ("commands/requests.rs", include_str!("requests.rs")),
            ("commands/rides.rs", include_str!("rides.rs")),
            ("commands/schedule.rs", include_str!("schedule.rs")),
            ("commands/series.rs", include_str!("series.rs")),
            ("series.rs", include_str!("../series.rs")),
            ("commands/weather.rs", include_str!("weather.rs")),
            ("rules.rs", include_str!("../rules.rs")),
            ("schedule.rs", include_str!("../schedule.rs")),
            ("rides.rs", include_str!("../rides.rs")),
            ("requests.rs", include_str!("../requests.rs")),
            ("candidates.rs", include_str!("../candidates.rs")),
        ];
        for (file, source) in sources {
            assert_eq!(domain::decision::impure_words(source), Vec::<&str>::new(), "{file}: deciders are pure");
        }
    }
}
