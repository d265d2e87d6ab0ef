//! Collecting every invalid field of a request before refusing it, so that the caller
//! learns all of them at once (each as a JSON pointer into the REST body).

use domain::DomainError;
use domain::Invalid;

/// The invalid fields found so far.
#[derive(Debug, Default)]
pub struct Violations(Vec<Invalid>);

impl Violations {
    /// None found yet.
    pub fn new() -> Self {
        Violations::default()
    }

    /// Keeps the value, or records why it is invalid.
    pub fn check<T>(&mut self, r: Result<T, Invalid>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    /// Keeps the value, or records every reason it is invalid.
    pub fn check_all<T>(&mut self, r: Result<T, Vec<Invalid>>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.extend(e);
                None
            }
        }
    }

    /// Records a violation.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Invalid::new(field, message));
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The violations as a list (for validators that return several).
    pub fn into_list(self) -> Vec<Invalid> {
        self.0
    }

    /// `Err(Invalid)` with every violation when any was found, else the built value.
    /// `build` runs only when every checked field was valid.
    pub fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, DomainError> {
        if !self.0.is_empty() {
            return Err(DomainError::Invalid(self.0));
        }
        build().ok_or_else(|| DomainError::invalid("", "a checked field was missing"))
    }
}

/// A label that may be empty (then `None`).
pub fn optional_label(field: &str, value: &str, max: usize) -> Result<Option<String>, Invalid> {
    if value.trim().is_empty() { Ok(None) } else { domain::types::parse_label(field, value, max).map(Some) }
}

/// A free text (notes, descriptions): trimmed, bounded, may contain line breaks.
pub fn optional_text(field: &str, value: &str, max: usize) -> Result<Option<String>, Invalid> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if v.chars().count() > max {
        return Err(Invalid::new(field, format!("must be at most {max} characters")));
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    Ok(Some(v.to_owned()))
}

/// An optional `"YYYY-MM-DD"` date.
pub fn optional_date(field: &str, value: &str) -> Result<Option<chrono::NaiveDate>, Invalid> {
    if value.trim().is_empty() { Ok(None) } else { domain::types::parse_date(field, value.trim()).map(Some) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_violation_is_reported_and_nothing_is_built() {
        let mut v = Violations::new();
        let a = v.check(domain::types::parse_label("/name", " ", 10));
        let b = v.check(optional_date("/to", "tomorrow"));
        let r: Result<(), _> = v.finish(|| a.zip(b).map(|_| ()));
        let DomainError::Invalid(fields) = r.unwrap_err() else { panic!("expected Invalid") };
        assert_eq!(fields.iter().map(|f| f.field.as_str()).collect::<Vec<_>>(), ["/name", "/to"]);
    }

    #[test]
    fn optional_values_are_none_when_blank() {
        assert_eq!(optional_label("/x", "  ", 5).unwrap(), None);
        assert_eq!(
            optional_text("/notes", "likes the harbour\nspeaks Danish", 100).unwrap().unwrap().lines().count(),
            2
        );
        assert!(optional_text("/notes", "a\u{0}b", 100).is_err());
        assert_eq!(optional_date("/d", "").unwrap(), None);
    }
}
