//! Property tests of the care-home service's field validation: optional labels, free texts
//! and dates take arbitrary input without panicking, keep valid values exactly (trimmed),
//! treat blanks as absent, and refuse the rest naming the field; `Violations` reports every
//! refused field of a request, in order, and builds nothing then.
//!
//! Deterministic (fixed seed); `PROPTEST_CASES` sets the count (2048 by default); the long
//! form: `PROPTEST_CASES=100000 cargo nextest run -p samskab-carehome --test carehome validation_props::`.

use carehome::validation::{Violations, optional_date, optional_label, optional_text};
use domain::DomainError;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed};

fn config() -> Config {
    Config {
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(0x5a_4d_53_4b_41_42),
        // Cheap cases: more than proptest's 256 unless PROPTEST_CASES says otherwise.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2048),
        ..Config::default()
    }
}

fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[ \\t\\n\\r\\x00-\\x1fa-z0-9\\-]{0,20}", "\\PC{0,600}", Just("   ".to_owned())]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn optional_fields_never_panic_and_keep_exactly_the_trimmed_value(value in nasty(), max in 0usize..700) {
        let t = value.trim();
        match optional_label("/name", &value, max) {
            Ok(None) => prop_assert!(t.is_empty()),
            Ok(Some(v)) => prop_assert!(v == t && v.chars().count() <= max && !v.chars().any(char::is_control)),
            Err(e) => prop_assert_eq!(e.field, "/name"),
        }
        match optional_text("/notes", &value, max) {
            Ok(None) => prop_assert!(t.is_empty()),
            Ok(Some(v)) => {
                prop_assert!(v == t && v.chars().count() <= max);
                prop_assert!(!v.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')));
            }
            Err(e) => {
                prop_assert_eq!(e.field, "/notes");
                prop_assert!(t.chars().count() > max || t.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')));
            }
        }
        match optional_date("/to", &value) {
            Ok(None) => prop_assert!(t.is_empty()),
            Ok(Some(d)) => prop_assert_eq!(d.format("%Y-%m-%d").to_string(), t),
            Err(e) => prop_assert_eq!(e.field, "/to"),
        }
    }

    #[test]
    fn every_refused_field_is_reported_in_order(values in proptest::collection::vec(nasty(), 0..8)) {
        let mut v = Violations::new();
        let mut expected = Vec::new();
        let mut kept = Vec::new();
        for (i, value) in values.iter().enumerate() {
            let field = format!("/items/{i}/name");
            match domain::types::parse_label(&field, value, 40) {
                Ok(_) => {}
                Err(_) => expected.push(field.clone()),
            }
            kept.push(v.check(domain::types::parse_label(&field, value, 40)));
        }
        let built = std::cell::Cell::new(false);
        let r = v.finish(|| { built.set(true); kept.into_iter().collect::<Option<Vec<_>>>() });
        match r {
            Ok(names) => {
                prop_assert!(expected.is_empty());
                prop_assert_eq!(names.len(), values.len());
            }
            Err(DomainError::Invalid(fields)) => {
                prop_assert!(!built.get(), "nothing is built when a field is refused");
                prop_assert_eq!(fields.into_iter().map(|f| f.field).collect::<Vec<_>>(), expected);
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }
}
