//! The gateway authenticates, scopes and renders; it holds no domain knowledge. This test
//! reads every module under `services/gateway/src` and fails when one names an event type
//! of `domain` in a string literal or builds a service's stream id (a literal holding a
//! stream prefix followed by a placeholder or ending there). The event names come from the
//! domain crate and the prefixes from the services' own stream functions, so a new event
//! or stream is covered without editing this file. Comments are not code and are skipped.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use uuid::Uuid;

/// Every event type of the domain, public and internal.
fn event_names() -> Vec<&'static str> {
    use domain::events::{BookingEvent, CareHomeEvent, INTERNAL_EVENT_TYPES, VolunteerEvent};
    BookingEvent::NAMES
        .iter()
        .chain(CareHomeEvent::NAMES)
        .chain(VolunteerEvent::NAMES)
        .chain(INTERNAL_EVENT_TYPES)
        .copied()
        .collect()
}

/// The prefix of every stream the services build, from their own functions.
fn stream_prefixes() -> Vec<String> {
    let id = Uuid::nil();
    let day = NaiveDate::from_ymd_opt(2027, 5, 3).expect("a day");
    let streams = [
        booking::rides::ride_stream(id),
        booking::requests::request_stream(id),
        booking::commands::weather::weather_stream(id, day),
        booking::schedule::Holder::Bike(id).stream(day),
        booking::schedule::Holder::Pilot(id).stream(day),
        booking::schedule::Holder::Resident(id).stream(day),
        carehome::commands::chapters::stream(id),
        carehome::commands::carehomes::stream(id),
        carehome::commands::bikes::stream(id),
        carehome::commands::residents::stream(id),
        volunteer::grpc::stream(id),
    ];
    streams
        .iter()
        .map(|s| {
            let at = s.find(&id.to_string()).unwrap_or_else(|| panic!("{s} holds its object's id"));
            s[..at].to_owned()
        })
        .collect()
}

/// The string literals of Rust source outside comments (escapes kept as written).
fn literals(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in source.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let mut chars = code.chars().peekable();
        let (mut inside, mut current, mut prev) = (false, String::new(), ' ');
        while let Some(c) = chars.next() {
            if inside {
                match c {
                    '\\' => {
                        current.push(c);
                        if let Some(n) = chars.next() {
                            current.push(n);
                        }
                    }
                    '"' => {
                        out.push(std::mem::take(&mut current));
                        inside = false;
                    }
                    _ => current.push(c),
                }
            } else if c == '"' && prev != '\'' {
                inside = true;
            } else if c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            prev = c;
        }
    }
    out
}

/// What a module's literals reveal: event names and stream ids it builds.
fn violations(source: &str, names: &[&str], prefixes: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for lit in literals(source) {
        for word in lit.split(|c: char| !c.is_ascii_alphanumeric()) {
            if names.contains(&word) {
                found.push(format!("names the event type {word} in {lit:?}"));
            }
        }
        for p in prefixes {
            let builds = lit.match_indices(p.as_str()).any(|(at, _)| {
                let starts_word = at == 0 || !lit.as_bytes()[at - 1].is_ascii_alphanumeric();
                let rest = &lit[at + p.len()..];
                starts_word && (rest.is_empty() || rest.starts_with('{'))
            });
            if builds {
                found.push(format!("builds a {p}… stream id in {lit:?}"));
            }
        }
    }
    found
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_gateway_names_no_event_type_and_builds_no_stream_id() {
    let (names, prefixes) = (event_names(), stream_prefixes());
    assert!(names.len() > 40 && prefixes.len() == 11, "the vocabulary was read: {names:?} {prefixes:?}");
    let mut files = Vec::new();
    sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    assert!(files.len() > 30, "every module was found");
    let mut all = Vec::new();
    for f in files.iter().filter(|f| !f.ends_with("boundaries.rs")) {
        let source = std::fs::read_to_string(f).expect("readable");
        all.extend(violations(&source, &names, &prefixes).into_iter().map(|v| format!("{}: {v}", f.display())));
    }
    assert!(all.is_empty(), "domain knowledge in the gateway:\n{}", all.join("\n"));
}

#[test]
fn the_check_finds_what_it_looks_for() {
    let (names, prefixes) = (event_names(), stream_prefixes());
    let source = [
        "let t = \"Ride",
        "Booked\";\n",
        "let s = format!(\"ride",
        "-{id}\");\n",
        "let p = vec![\"rider",
        "equest-\"];\n",
        "// \"Pilot",
        "Suspended\" in a comment is prose\n",
        "let path = \"/v1/ride-requests\"; let code = \"pilot-suspended\";\n",
    ]
    .concat();
    let found = violations(&source, &names, &prefixes);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].contains("RideBooked") && found[1].contains("ride-") && found[2].contains("riderequest-"));
}
