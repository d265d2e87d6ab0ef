//! The guard against server-side request forgery. A target must be an absolute `http://`
//! or `https://` URL without credentials; its host is resolved and every address must be
//! public (not loopback, private, link-local, cloud metadata, unspecified, multicast,
//! CGNAT or reserved). A sender (the gateway's webhook dispatcher, notify's push sender)
//! then connects to the checked address (pinned) and does not follow redirects.
//! `--webhooks-allow-loopback` and `--push-allow-loopback` allow loopback targets for
//! local development and tests.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Whether a target address is refused.
fn forbidden(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4, allow_loopback),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4, allow_loopback);
            }
            let s = v6.segments();
            if v6.is_loopback() {
                return !allow_loopback;
            }
            v6.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7 (fd00:ec2::254 among them)
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] & 0xff00) == 0xff00 // multicast
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0]) // NAT64 64:ff9b::/96: judge the embedded IPv4 address
                    && forbidden_v4(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8), allow_loopback)
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64 64:ff9b:1::/48: a translator of this network
                || s[0] == 0x2002 // 6to4: reaches any IPv4 address, private ones too
                || (s[0] == 0x2001 && s[1] == 0) // Teredo 2001::/32: likewise
                || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0) // IPv4-compatible
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        }
    }
}

/// Whether an IPv4 target address is refused.
fn forbidden_v4(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    let o = ip.octets();
    if ip.is_loopback() {
        return !allow_loopback;
    }
    o[0] == 0 // "this network", unspecified
        || o[0] == 10
        || (o[0] == 172 && (16..32).contains(&o[1]))
        || (o[0] == 192 && o[1] == 168)
        || (o[0] == 169 && o[1] == 254) // link-local, cloud metadata
        || (o[0] == 100 && (64..128).contains(&o[1])) // CGNAT
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (18..20).contains(&o[1])) // benchmarking
        || o[0] >= 224 // multicast, reserved, broadcast
}

/// Why a URL is refused as a target (the message of a 400 on `/url`).
pub fn check_url(url: &str) -> Result<url::Url, &'static str> {
    let u = url::Url::parse(url).map_err(|_| "must be an absolute http:// or https:// URL")?;
    match u.scheme() {
        "http" | "https" => {}
        _ => return Err("must be an absolute http:// or https:// URL"),
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("must not carry credentials");
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("must name a host");
    }
    if u.fragment().is_some() {
        return Err("must not have a fragment");
    }
    if url.len() > 2000 {
        return Err("must be at most 2000 characters");
    }
    Ok(u)
}

/// The URL's host when it is an IP address literal.
pub fn literal_ip(u: &url::Url) -> Option<IpAddr> {
    u.host_str()?.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// Resolves the target's host; `Err` when any address is refused, `Ok(empty)` when it
/// does not resolve.
pub async fn resolve(u: &url::Url, allow_loopback: bool) -> Result<Vec<SocketAddr>, String> {
    let port = u.port_or_known_default().unwrap_or(80);
    let host = u.host_str().unwrap_or("");
    let addrs: Vec<SocketAddr> = match literal_ip(u) {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => match tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host, port))).await {
            Ok(Ok(a)) => a.collect(),
            _ => Vec::new(),
        },
    };
    if let Some(bad) = addrs.iter().find(|a| forbidden(a.ip(), allow_loopback)) {
        // Which address is not said: the answer would map the network behind the gateway.
        let _ = bad;
        return Err("the target's host resolves to an address that is not allowed (loopback, private, link-local, \
                    shared, reserved, or a tunnel or translator to one)"
            .into());
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_absolute_http_or_https_urls_without_credentials() {
        assert!(check_url("https://hooks.example.org/samskab").is_ok());
        assert!(check_url("http://hooks.example.org:8080/x?y=1").is_ok());
        for bad in ["ftp://example.org/", "/relative", "https://user:pw@example.org/", "https://example.org/#frag"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_refused_url_says_why() {
        assert_eq!(check_url("mailto:ops@example.org").err(), Some("must be an absolute http:// or https:// URL"));
        assert_eq!(check_url("https://user@example.org/").err(), Some("must not carry credentials"));
        assert_eq!(check_url("https://example.org/#x").err(), Some("must not have a fragment"));
        let long = format!("https://example.org/{}", "a".repeat(2000));
        assert_eq!(check_url(&long).err(), Some("must be at most 2000 characters"));
        assert!(check_url(&long[..2000]).is_ok());
    }

    #[test]
    fn private_and_special_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a00:1",
            "64:ff9b:1:ffff::808:808",
            "2002:a00:1::1",
            "2002:808:808::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        ] {
            assert!(forbidden(ip.parse().unwrap(), false), "{ip}");
        }
        // The well-known NAT64 prefix is judged by the IPv4 address it carries.
        assert!(!forbidden("64:ff9b::808:808".parse().unwrap(), false));
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "100.128.0.1", "172.32.0.1"] {
            assert!(!forbidden(ip.parse().unwrap(), false), "{ip}");
        }
        assert!(!forbidden("127.0.0.1".parse().unwrap(), true));
        assert!(!forbidden("::1".parse().unwrap(), true));
        assert!(forbidden("10.0.0.1".parse().unwrap(), true));
    }

    #[test]
    fn ipv4_mapped_ipv6_addresses_are_judged_as_their_ipv4_address() {
        for ip in ["::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:100.64.0.1", "::ffff:0.0.0.0"] {
            assert!(forbidden(ip.parse().unwrap(), false), "{ip}");
        }
        assert!(!forbidden("::ffff:93.184.216.34".parse().unwrap(), false));
        assert!(!forbidden("::ffff:127.0.0.1".parse().unwrap(), true));
        assert!(forbidden("::ffff:192.168.0.1".parse().unwrap(), true));
    }

    #[test]
    fn allowing_loopback_opens_loopback_only() {
        for ip in ["127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1"] {
            assert!(forbidden(ip.parse().unwrap(), false), "{ip}");
            assert!(!forbidden(ip.parse().unwrap(), true), "{ip}");
        }
        for ip in [
            "10.0.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::",
            "fd00::1",
            "fe80::1",
            "224.0.0.1",
        ] {
            assert!(forbidden(ip.parse().unwrap(), true), "{ip}");
        }
    }

    #[test]
    fn bracketed_ipv6_hosts_are_address_literals() {
        let u = check_url("http://[::1]:8080/hook").unwrap();
        assert_eq!(literal_ip(&u), Some("::1".parse().unwrap()));
        let u = check_url("https://169.254.169.254/latest/meta-data").unwrap();
        assert_eq!(literal_ip(&u), Some("169.254.169.254".parse().unwrap()));
        assert_eq!(literal_ip(&check_url("https://hooks.example.org/").unwrap()), None);
    }

    /// `resolve` of an address literal (no DNS lookup).
    async fn resolved(url: &str, allow_loopback: bool) -> Result<Vec<SocketAddr>, String> {
        resolve(&check_url(url).unwrap(), allow_loopback).await
    }

    #[tokio::test]
    async fn literal_targets_are_refused_when_special() {
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://0.0.0.0:8080/",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]/",
            "http://127.0.0.1:9000/",
        ] {
            let err = resolved(url, false).await.expect_err(url);
            assert!(err.contains("an address that is not allowed"), "{url}: {err}");
            let ip = url.split("//").nth(1).unwrap().split(['/', ']']).next().unwrap().trim_start_matches('[');
            let ip = ip.rsplit_once(':').filter(|_| !ip.contains("::")).map_or(ip, |(h, _)| h);
            assert!(!err.contains(ip), "the refusal names no address: {err}");
        }
        assert!(resolved("http://169.254.169.254/", true).await.is_err());
        assert!(resolved("http://[fd00::1]/", true).await.is_err());
    }

    #[tokio::test]
    async fn public_and_allowed_loopback_literals_resolve_to_themselves() {
        let public: SocketAddr = "93.184.216.34:443".parse().unwrap();
        assert_eq!(resolved("https://93.184.216.34/hook", false).await, Ok(vec![public]));
        let local: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(resolved("http://127.0.0.1:9000/", true).await, Ok(vec![local]));
        let local6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(resolved("http://[::1]/", true).await, Ok(vec![local6]));
    }
}
