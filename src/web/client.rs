//! Who is on the other end of a request: the client's address, through the reverse
//! proxies `TRUSTED_PROXIES` names, and whether the request comes straight from this
//! machine.

use std::net::IpAddr;

use ipnet::IpNet;
use poem::Request;

/// Headers by which a proxy says it forwarded a request.
const FORWARDING: [&str; 5] = ["x-forwarded-for", "forwarded", "x-real-ip", "x-forwarded-host", "via"];

fn peer(req: &Request) -> Option<IpAddr> {
    req.remote_addr().as_socket_addr().map(|a| a.ip())
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the
/// rightmost address of `X-Forwarded-For` that is not a trusted proxy (the ones left of
/// it were written by the client and prove nothing).
pub fn address(req: &Request, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer(req)?;
    Some(forwarded_client(
        peer,
        req.headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok()),
        trusted,
    ))
}

/// [`address`] without the request: `peer`, and the `X-Forwarded-For` header values in
/// the order received.
pub fn forwarded_client<'a>(peer: IpAddr, headers: impl Iterator<Item = &'a str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers.flat_map(|h| h.split(',')).map(str::trim).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else { break };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// Straight from this machine: a loopback peer and no sign of a proxy in between (a
/// proxy on this host would make every client look local).
pub fn is_direct_local(req: &Request) -> bool {
    peer(req).is_some_and(|ip| ip.is_loopback()) && !FORWARDING.iter().any(|h| req.headers().contains_key(*h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_found_behind_trusted_proxies_only() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // No trusted proxy: the header is the client's word and ignored.
        assert_eq!(
            forwarded_client(ip("203.0.113.9"), ["1.2.3.4"].into_iter(), &proxies),
            ip("203.0.113.9")
        );
        // Through one proxy.
        assert_eq!(
            forwarded_client(ip("10.0.0.2"), ["198.51.100.7"].into_iter(), &proxies),
            ip("198.51.100.7")
        );
        // A client that forges the header gets its own address, not the forged one.
        assert_eq!(
            forwarded_client(ip("10.0.0.2"), ["6.6.6.6, 198.51.100.7"].into_iter(), &proxies),
            ip("198.51.100.7")
        );
        // Through two proxies, over two header lines.
        assert_eq!(
            forwarded_client(ip("10.0.0.2"), ["198.51.100.7", "10.0.0.3"].into_iter(), &proxies),
            ip("198.51.100.7")
        );
        // A proxy that sends no header, or garbage: the proxy itself.
        assert_eq!(
            forwarded_client(ip("10.0.0.2"), std::iter::empty(), &proxies),
            ip("10.0.0.2")
        );
        assert_eq!(
            forwarded_client(ip("10.0.0.2"), ["nonsense"].into_iter(), &proxies),
            ip("10.0.0.2")
        );
    }
}
