//! Every volunteer command as pure domain: the pilot's validation, its state folded from
//! its stream, and `decide(state, command) -> events` or a `DomainError` (no I/O, no keys,
//! no clock). The executor (`servicekit::executor`) loads the state and appends the events.

pub mod pilots;

#[cfg(test)]
mod purity {
    #[test]
    fn no_decider_is_async_or_touches_a_store_a_key_or_the_clock() {
        let impure = domain::decision::impure_words(include_str!("pilots.rs"));
        assert_eq!(impure, Vec::<&str>::new(), "pilots.rs: deciders are pure");
    }
}
