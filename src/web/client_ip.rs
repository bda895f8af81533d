//! The client's address, for per-IP rate limits: the TCP peer, unless the peer is one of
//! `VEZA_TRUSTED_PROXIES`; then `X-Forwarded-For` is read from the right (each proxy
//! appends the address it received from), trusted entries are skipped, and the first
//! untrusted one is the client. Everything left of it was written by the client and is
//! never believed: taking the leftmost value would let anyone pick their own address.
//!
//! A malformed entry reached in that walk (not an IP address, with or without a port)
//! means the chain cannot be trusted: the peer is used. When every entry is trusted the
//! request came from inside the trusted network and its leftmost entry is used.

use std::net::{IpAddr, SocketAddr};

use actix_web::HttpRequest;
use actix_web::http::header::X_FORWARDED_FOR;

use crate::config::TrustedProxies;

/// The client address of a request whose TCP peer is `peer` and whose
/// `X-Forwarded-For` header lines are `forwarded_for`, in the order received.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let lines: Vec<&str> = forwarded_for.into_iter().collect();
    let mut leftmost_trusted = peer;
    for entry in lines.iter().rev().flat_map(|line| line.rsplit(',')) {
        let Some(ip) = parse_entry(entry) else {
            return peer;
        };
        if !trusted.contains(ip) {
            return ip;
        }
        leftmost_trusted = ip;
    }
    leftmost_trusted
}

/// [`client_ip`] of an actix request; `None` when it has no peer address (a test
/// request, or a Unix socket). A header line that is not ASCII makes the chain
/// malformed (the peer is used).
pub fn of_request(req: &HttpRequest, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let mut lines = Vec::new();
    for value in req.headers().get_all(X_FORWARDED_FOR) {
        match value.to_str() {
            Ok(line) => lines.push(line),
            Err(_) => return Some(peer.to_canonical()),
        }
    }
    Some(client_ip(peer, lines, trusted))
}

/// One `X-Forwarded-For` entry: `203.0.113.7`, `2001:db8::1`, or either with a port
/// (`203.0.113.7:4711`, `[2001:db8::1]:4711`, as some proxies write them).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse::<IpAddr>().ok())
        })?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(s: &str) -> TrustedProxies {
        TrustedProxies::parse(s).unwrap()
    }

    const CLIENT: &str = "203.0.113.7";
    const PROXY: &str = "10.0.0.5";

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let none = TrustedProxies::default();
        assert_eq!(client_ip(ip(CLIENT), ["1.2.3.4"], &none), ip(CLIENT));
        // A proxy that is not configured is not believed either.
        let t = trusted("10.0.0.0/8");
        assert_eq!(client_ip(ip("192.0.2.1"), ["1.2.3.4"], &t), ip("192.0.2.1"));
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let t = trusted("10.0.0.0/8");
        assert_eq!(client_ip(ip(PROXY), [CLIENT], &t), ip(CLIENT));
        // Two trusted hops: the first untrusted entry from the right.
        assert_eq!(
            client_ip(ip(PROXY), [&format!("{CLIENT}, 10.1.2.3")[..]], &t),
            ip(CLIENT)
        );
        // No header behind a trusted proxy: the proxy itself.
        assert_eq!(client_ip(ip(PROXY), [], &t), ip(PROXY));
    }

    #[test]
    fn spoofed_leftmost_entries_are_ignored() {
        let t = trusted("10.0.0.0/8");
        // The client sent `X-Forwarded-For: 198.51.100.1` (or a trusted-looking
        // 10.9.9.9); the proxy appended the real address.
        for forged in ["198.51.100.1", "10.9.9.9", "127.0.0.1", "garbage", ""] {
            let header = format!("{forged}, {CLIENT}");
            assert_eq!(
                client_ip(ip(PROXY), [&header[..]], &t),
                ip(CLIENT),
                "{header}"
            );
        }
        // The same forgery as a separate header line, before the proxy's.
        assert_eq!(
            client_ip(ip(PROXY), ["198.51.100.1", CLIENT], &t),
            ip(CLIENT)
        );
    }

    #[test]
    fn malformed_chains_fall_back_to_the_peer() {
        let t = trusted("10.0.0.0/8");
        for header in [
            "unknown",
            "203.0.113.7, bogus",
            "",
            " , ",
            "203.0.113.7 10.0.0.1",
        ] {
            assert_eq!(client_ip(ip(PROXY), [header], &t), ip(PROXY), "{header:?}");
        }
        // Behind two proxies the walk stops at the first untrusted entry, before the
        // malformed one further left.
        assert_eq!(
            client_ip(ip(PROXY), ["bogus, 203.0.113.7, 10.0.0.9"], &t),
            ip(CLIENT)
        );
    }

    #[test]
    fn ports_brackets_and_mapped_addresses_are_understood() {
        let t = trusted("10.0.0.0/8, 2001:db8:ffff::/48");
        assert_eq!(client_ip(ip(PROXY), ["203.0.113.7:4711"], &t), ip(CLIENT));
        assert_eq!(
            client_ip(ip(PROXY), ["[2001:db8::1]:4711"], &t),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip(ip(PROXY), ["[2001:db8::1]"], &t),
            ip("2001:db8::1")
        );
        // An IPv4 proxy seen by a dual-stack socket as ::ffff:10.0.0.5 is still trusted.
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.5"), ["::ffff:203.0.113.7"], &t),
            ip(CLIENT)
        );
        assert_eq!(client_ip(ip("2001:db8:ffff::1"), [CLIENT], &t), ip(CLIENT));
    }

    #[test]
    fn every_entry_trusted_gives_the_leftmost() {
        let t = trusted("10.0.0.0/8");
        assert_eq!(
            client_ip(ip(PROXY), ["10.0.0.7, 10.0.0.6"], &t),
            ip("10.0.0.7")
        );
    }

    #[test]
    fn actix_requests_are_read_with_every_header_line() {
        use actix_web::test::TestRequest;
        let t = trusted(PROXY);
        let req = TestRequest::default()
            .peer_addr(format!("{PROXY}:5555").parse().unwrap())
            .append_header(("X-Forwarded-For", "198.51.100.1"))
            .append_header(("X-Forwarded-For", CLIENT))
            .to_http_request();
        assert_eq!(of_request(&req, &t), Some(ip(CLIENT)));
        let req = TestRequest::default()
            .peer_addr(format!("{CLIENT}:5555").parse().unwrap())
            .append_header(("X-Forwarded-For", "198.51.100.1"))
            .to_http_request();
        assert_eq!(of_request(&req, &t), Some(ip(CLIENT)));
        assert_eq!(
            of_request(&TestRequest::default().to_http_request(), &t),
            None
        );
    }
}
