//! Every volunteer command as pure domain: the pilot's validation, its state folded from
//! its stream, and `decide(state, command) -> events` or a `DomainError` (no I/O, no keys,
//! no clock). The executor (`servicekit::executor`) loads the state and appends the events.

pub mod pilots;

#[cfg(test)]
mod purity {
    const IMPURE: &[&str] = &[
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

    #[test]
    fn no_decider_is_async_or_touches_a_store_a_key_or_the_clock() {
        for word in IMPURE {
            assert!(!include_str!("pilots.rs").contains(word), "pilots.rs names `{word}`: deciders are pure");
        }
    }
}
