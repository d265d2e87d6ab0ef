//! What a key or token secret given to a binary must be: not a value Samskab itself
//! published (a sample, a placeholder, a test's), at least 32 characters after trimming,
//! not one character repeated, not a run of consecutive bytes; a variable that is set
//! must not be empty. The binaries check every secret they are given with [`check`].

/// Secret values that appeared in Samskab's own files (the docker-compose sample, the
/// Kubernetes placeholders, tests): public, so never accepted as a secret.
pub const SHIPPED: &[&str] = &[
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    "laptop-only-secret-of-at-least-32-characters",
    "k1=laptop-only-secret-of-at-least-32-characters",
    "a-test-secret-of-enough-length-for-hs256",
    "k1=a-test-secret-of-enough-length-for-hs256",
    "REPLACE-ME-64-hex-digits",
    "REPLACE-ME-k1=at-least-32-characters",
    "at-least-32-characters",
];

/// Refuses a secret value that is empty, published, short or of low entropy; `what` names
/// where it came from (a variable or a file) in the message.
pub fn check(what: &str, value: &str) -> Result<(), String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(format!("{what} is set but empty; unset it or give it a secret"));
    }
    if SHIPPED.iter().any(|s| s.eq_ignore_ascii_case(v)) {
        return Err(format!(
            "{what} holds a value published with Samskab (a sample or placeholder); generate your own, \
             e.g. `openssl rand -hex 32` or `samskab keys --out DIR`"
        ));
    }
    if v.chars().count() < 32 {
        return Err(format!("{what} is shorter than 32 characters"));
    }
    if low_entropy(v.as_bytes()) {
        return Err(format!("{what} is one character repeated or a run of consecutive characters"));
    }
    Ok(())
}

/// One byte repeated, or each byte one more (or one less) than the one before.
pub fn low_entropy(b: &[u8]) -> bool {
    let all = |f: fn(u8, u8) -> bool| b.windows(2).all(|w| f(w[0], w[1]));
    b.len() < 2 || all(|a, b| a == b) || all(|a, b| b == a.wrapping_add(1)) || all(|a, b| b.wrapping_add(1) == a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_short_repeated_and_consecutive_secrets_are_refused() {
        for shipped in SHIPPED {
            assert!(check("THE_VARIABLE", shipped).is_err(), "{shipped}");
            assert!(check("THE_VARIABLE", &format!("  {shipped}\n")).is_err(), "{shipped} with spaces");
        }
        let err = check("THE_VARIABLE", "   ").unwrap_err();
        assert!(err.contains("THE_VARIABLE") && err.contains("empty"), "{err}");
        assert!(check("THE_VARIABLE", "0123456789abcdef0123456789abcde").unwrap_err().contains("shorter"));
        assert!(check("THE_VARIABLE", &"a".repeat(64)).unwrap_err().contains("repeated"));
        let ascending: String = (b'A'..=b'z').map(char::from).collect();
        assert!(check("THE_VARIABLE", &ascending).is_err());
        let descending: String = ascending.chars().rev().collect();
        assert!(check("THE_VARIABLE", &descending).is_err());
        assert!(low_entropy(&(0u8..32).collect::<Vec<_>>()), "bytes 00..1f");
        assert!(low_entropy(&[0u8; 32]));
        assert!(!low_entropy(&[0, 1, 2, 4]));
        check("THE_VARIABLE", "7c1e4b9a2f6d08e35a7b91c4d2e6f03819ab5c7e2d4f6a8b0c1e3d5f7a9b2c4d").unwrap();
    }
}
