//! Every care-home command as pure domain: each aggregate's validation, its state folded
//! from its stream, and a decider per command, `decide(state, command) -> events` or a
//! `DomainError` (no I/O, no keys, no clock). The executor (`servicekit::executor`, through
//! `servicekit::aggregate`) loads the state and appends the events; see `crate::grpc`.

pub mod bikes;
pub mod carehomes;
pub mod chapters;
pub mod people;
pub mod residents;

#[cfg(test)]
mod purity {
    #[test]
    fn no_decider_is_async_or_touches_a_store_a_key_or_the_clock() {
        let sources = [
            ("bikes.rs", include_str!("bikes.rs")),
            ("carehomes.rs", include_str!("carehomes.rs")),
            ("carehomes/coordinators.rs", include_str!("carehomes/coordinators.rs")),
            ("chapters.rs", include_str!("chapters.rs")),
            ("people.rs", include_str!("people.rs")),
            ("residents.rs", include_str!("residents.rs")),
            ("validation.rs", include_str!("../validation.rs")),
        ];
        for (file, source) in sources {
            assert_eq!(domain::decision::impure_words(source), Vec::<&str>::new(), "{file}: deciders are pure");
        }
    }
}
