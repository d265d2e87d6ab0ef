//! A small iCalendar (RFC 5545) writer: content lines ending in CRLF, folded so that no
//! line exceeds 75 octets (never inside a UTF-8 character), TEXT values escaped
//! (`\\`, `;`, `,`, newlines), times in UTC (`...Z`).

use chrono::{DateTime, Utc};

/// The longest line, in octets, without its CRLF (RFC 5545 §3.1).
pub const MAX_LINE: usize = 75;

/// Builds an iCalendar object line by line.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
}

impl Writer {
    /// An empty object.
    pub fn new() -> Self {
        Writer::default()
    }

    /// `BEGIN:<component>`.
    pub fn begin(&mut self, component: &str) {
        self.raw("BEGIN", component);
    }

    /// `END:<component>`.
    pub fn end(&mut self, component: &str) {
        self.raw("END", component);
    }

    /// A property whose value is TEXT (escaped).
    pub fn text(&mut self, name: &str, value: &str) {
        self.line(&format!("{name}:{}", escape(value)));
    }

    /// A property whose value is written as given (dates, numbers, enumerations, ids).
    pub fn raw(&mut self, name: &str, value: &str) {
        self.line(&format!("{name}:{value}"));
    }

    /// A DATE-TIME property in UTC.
    pub fn time(&mut self, name: &str, t: DateTime<Utc>) {
        self.raw(name, &utc(t));
    }

    fn line(&mut self, line: &str) {
        self.out.push_str(&fold(line));
    }

    /// The object's text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// A UTC DATE-TIME (`20270503T080000Z`).
pub fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// Escapes a TEXT value: backslash, semicolon, comma and newlines (`\n`); other control
/// characters, which TEXT may not hold, are dropped.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push_str("\\n");
                }
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push('\t'),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// One content line, folded: at most 75 octets per physical line, continuation lines
/// starting with a space, never splitting a UTF-8 character; every line ends in CRLF.
pub fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 70 * 3 + 2);
    let mut width = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if width + n > MAX_LINE {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a,b;c\\d\ne\r\nf\u{7}"), "a\\,b\\;c\\\\d\\ne\\nf");
    }

    #[test]
    fn long_lines_fold_at_75_octets_without_splitting_characters() {
        let name = "Plejecentret Æblehaven på Østerbro, Søndre Fælledvej ".repeat(4);
        let folded = fold(&format!("LOCATION:{}", escape(&name)));
        assert!(folded.ends_with("\r\n"));
        let lines: Vec<&str> = folded.trim_end_matches("\r\n").split("\r\n").collect();
        assert!(lines.len() > 3);
        for (i, l) in lines.iter().enumerate() {
            assert!(l.len() <= MAX_LINE, "line {i} has {} octets", l.len());
            assert_eq!(i > 0, l.starts_with(' '));
        }
        let unfolded: String = lines.iter().enumerate().map(|(i, l)| if i == 0 { *l } else { &l[1..] }).collect();
        assert_eq!(unfolded, format!("LOCATION:{}", escape(&name)));
    }

    #[test]
    fn times_are_utc() {
        let t = DateTime::parse_from_rfc3339("2027-05-03T10:00:00+02:00").unwrap().to_utc();
        assert_eq!(utc(t), "20270503T080000Z");
    }
}
