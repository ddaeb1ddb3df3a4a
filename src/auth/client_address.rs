//! The client address of a request that came through trusted proxies (`--trusted-proxies`).
//!
//! Failed-authentication throttling and the audit trail key on the client's address. Behind a
//! load balancer the TCP peer is the balancer, so every client would share its address (one
//! guesser throttles everyone) and the audit trail would name the balancer. When the TCP peer is
//! a configured proxy, the client address is taken from `X-Forwarded-For` (REST) or the
//! `x-forwarded-for` metadata (gRPC) instead; from any other peer the header is ignored, so a
//! client cannot pick its own address.
//!
//! Each proxy appends the address it received the request from, so the list reads client
//! first, nearest proxy last. Only its right end is trustworthy: anything to the left of the
//! first address written by an untrusted party may be forged. So the list is read from the
//! right, skipping addresses that are themselves trusted proxies, and the first other address is
//! the client. A value that is not an address (`unknown`, an obfuscated identifier, garbage)
//! stops the walk at the last trusted hop: what lies beyond it cannot be vouched for, and taking
//! it would let the client choose. At most [`MAX_HOPS`] entries are read, from the right, and
//! entries longer than an address are not parsed, so a long header costs nothing.
//!
//! Forwarded addresses carry the port the proxy gave, or 0 (`X-Forwarded-For` usually has none).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr as _;

use ipnet::IpNet;

/// The most `X-Forwarded-For` entries read (from the right): a longer chain of trusted proxies
/// stops at its last readable hop.
pub const MAX_HOPS: usize = 16;
/// The longest entry parsed (`[v6 address]:port` fits); a longer one is not an address.
const MAX_ENTRY_LEN: usize = 64;

/// The proxies whose `X-Forwarded-For` is believed: IP networks (a single address is a /32 or
/// /128). Empty (the default): none, the TCP peer is the client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    /// Trusts these networks.
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self { networks }
    }

    /// Parses one `--trusted-proxies` entry: `10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`, `::1`.
    pub fn parse_network(text: &str) -> Result<IpNet, String> {
        let text = text.trim();
        IpNet::from_str(text)
            .or_else(|_| IpAddr::from_str(text).map(IpNet::from))
            .map_err(|_| format!("{text:?} is not an IP address or CIDR network"))
    }

    /// The trusted networks.
    pub fn networks(&self) -> &[IpNet] {
        &self.networks
    }

    /// Whether an address is a trusted proxy (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|network| network.contains(&ip))
    }

    /// The client address of a request from the TCP peer `peer` carrying these
    /// `X-Forwarded-For` values, in the order received.
    pub fn client_address<'a, I>(&self, peer: SocketAddr, forwarded_for: I) -> SocketAddr
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: DoubleEndedIterator,
    {
        if !self.trusts(peer.ip()) {
            return peer;
        }
        let entries = forwarded_for
            .into_iter()
            .rev()
            .flat_map(|value| value.rsplit(|&b| b == b','))
            .take(MAX_HOPS);
        let mut client = peer;
        for entry in entries {
            let Some(address) = parse_entry(entry) else {
                break;
            };
            client = address;
            if !self.trusts(address.ip()) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: `192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`, with or without a
/// port (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_entry(entry: &[u8]) -> Option<SocketAddr> {
    let entry = entry.trim_ascii();
    if entry.is_empty() || entry.len() > MAX_ENTRY_LEN {
        return None;
    }
    let text = std::str::from_utf8(entry).ok()?;
    if let Ok(address) = SocketAddr::from_str(text) {
        return Some(SocketAddr::new(address.ip().to_canonical(), address.port()));
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let ip = IpAddr::from_str(bare).ok()?;
    Some(SocketAddr::new(ip.to_canonical(), 0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn proxies(networks: &[&str]) -> TrustedProxies {
        TrustedProxies::new(
            networks
                .iter()
                .map(|n| TrustedProxies::parse_network(n).unwrap())
                .collect(),
        )
    }

    fn client(trusted: &TrustedProxies, peer: &str, values: &[&str]) -> String {
        trusted
            .client_address(
                peer.parse().unwrap(),
                values.iter().map(|v| v.as_bytes()).collect::<Vec<_>>(),
            )
            .to_string()
    }

    #[test]
    fn parses_networks_and_addresses() {
        let trusted = proxies(&["10.0.0.0/8", "192.0.2.7", " 2001:db8::/32 ", "::1"]);
        assert!(trusted.trusts("10.1.2.3".parse().unwrap()));
        assert!(trusted.trusts("192.0.2.7".parse().unwrap()));
        assert!(!trusted.trusts("192.0.2.8".parse().unwrap()));
        assert!(trusted.trusts("2001:db8::5".parse().unwrap()));
        assert!(trusted.trusts("::1".parse().unwrap()));
        // An IPv4 peer seen through a dual-stack socket.
        assert!(trusted.trusts("::ffff:10.0.0.1".parse().unwrap()));
        for bad in ["", "10.0.0.0/33", "example.com", "10.0.0.1:80"] {
            assert!(TrustedProxies::parse_network(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            client(&trusted, "198.51.100.1:5000", &["203.0.113.9"]),
            "198.51.100.1:5000"
        );
        let nobody = TrustedProxies::default();
        assert_eq!(
            client(&nobody, "10.0.0.1:5000", &["203.0.113.9"]),
            "10.0.0.1:5000"
        );
    }

    #[test]
    fn the_rightmost_untrusted_address_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer = "10.0.0.1:5000";
        assert_eq!(client(&trusted, peer, &["203.0.113.9"]), "203.0.113.9:0");
        // A forged left part is ignored; trusted hops on the right are skipped.
        assert_eq!(
            client(&trusted, peer, &["1.2.3.4, 203.0.113.9, 10.9.9.9"]),
            "203.0.113.9:0"
        );
        // Several header lines are one list, in order.
        assert_eq!(
            client(&trusted, peer, &["1.2.3.4", "203.0.113.9", "10.9.9.9"]),
            "203.0.113.9:0"
        );
        // Ports and IPv6 forms.
        assert_eq!(
            client(&trusted, peer, &["203.0.113.9:4711"]),
            "203.0.113.9:4711"
        );
        assert_eq!(
            client(&trusted, peer, &["[2001:db8::9]:4711"]),
            "[2001:db8::9]:4711"
        );
        assert_eq!(client(&trusted, peer, &["2001:db8::9"]), "[2001:db8::9]:0");
        assert_eq!(
            client(&trusted, peer, &["[2001:db8::9]"]),
            "[2001:db8::9]:0"
        );
        // No header, or only proxies: the last trusted hop.
        assert_eq!(client(&trusted, peer, &[]), peer);
        assert_eq!(
            client(&trusted, peer, &["10.0.0.2, 10.0.0.3"]),
            "10.0.0.2:0"
        );
    }

    #[test]
    fn a_malformed_entry_stops_at_the_last_trusted_hop() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer = "10.0.0.1:5000";
        // "unknown" was written by the trusted proxy: what is left of it is not vouched for.
        assert_eq!(client(&trusted, peer, &["203.0.113.9, unknown"]), peer);
        assert_eq!(
            client(&trusted, peer, &["203.0.113.9, unknown, 10.0.0.2"]),
            "10.0.0.2:0"
        );
        assert_eq!(client(&trusted, peer, &["198.51.100.1, \u{e9}"]), peer);
        assert_eq!(client(&trusted, peer, &[""]), peer);
        assert_eq!(client(&trusted, peer, &["203.0.113.9,"]), peer);
        // A forged entry beyond the client does not matter.
        assert_eq!(
            client(&trusted, peer, &["garbage, 203.0.113.9"]),
            "203.0.113.9:0"
        );
    }

    #[test]
    fn long_headers_are_read_from_the_right_within_bounds() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer = "10.0.0.1:5000";
        let long = format!("{}203.0.113.9", "a,".repeat(100_000));
        assert_eq!(client(&trusted, peer, &[&long]), "203.0.113.9:0");
        let entry = format!("{}1", "0".repeat(MAX_ENTRY_LEN));
        assert_eq!(client(&trusted, peer, &[&entry]), peer);
        // More trusted hops than are read: the last one read.
        let hops: Vec<String> = (0..MAX_HOPS + 4).map(|i| format!("10.0.0.{i}")).collect();
        let chain = format!("203.0.113.9, {}", hops.join(", "));
        assert_eq!(client(&trusted, peer, &[&chain]), "10.0.0.4:0");
    }
}
