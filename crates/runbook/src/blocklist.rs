//! The file of `block_ips FILE`: which addresses to block, parsed strictly before any of it
//! becomes a firewall argument.
//!
//! One entry per line: an IPv4 or IPv6 address, or a CIDR block `address/prefix`. `#` starts
//! a comment (a whole line or the rest of one); blank lines are skipped; spaces, tabs and a
//! `\r` around an entry are trimmed. Anything else fails the whole file with the line number
//! and the offending text (clipped, control characters escaped): a half-applied blocklist is
//! worse than none, and a line like `1.2.3.4; rm -rf /` is a mistake or an attack, never an
//! address.
//!
//! The result is canonical text, safe to pass as one argument: `std::net::IpAddr`'s own
//! form (`2001:db8::1`, not `2001:0DB8:0:0::1`), blocks as `network/prefix`, and a `/32`
//! (IPv4) or `/128` (IPv6) block as the bare address. A block with host bits set
//! (`10.0.0.1/8`) is **rejected**, not masked: the operator meant either the address or the
//! network, and guessing which could block the wrong one. Also rejected: anything that
//! covers a loopback or unspecified address (`127.0.0.1`, `0.0.0.0/0`, `::1`): neo-ir's probe
//! and the local load balancer talk to the node over loopback, so blocking it takes the node
//! off the air. An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, as neo-cli prints peers) stays
//! IPv6; list the IPv4 form too when the node also listens on IPv4. Duplicates are removed,
//! the first occurrence's place kept. At most [`MAX_ENTRIES`] entries.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

/// Most entries one file may hold (after duplicates are removed).
pub const MAX_ENTRIES: usize = 65_536;

/// Most characters of a bad line shown in an error.
const CLIP: usize = 80;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BlocklistError {
    /// A line that is not an address, a block or a comment.
    #[error("line {line}: {reason}: \"{text}\"")]
    Invalid {
        /// 1-based.
        line: usize,
        /// The line as written, clipped to 80 characters, control characters escaped.
        text: String,
        reason: String,
    },
    #[error("more than {limit} entries; split the list or block whole networks with CIDR blocks")]
    TooMany { limit: usize },
}

/// Parse a blocklist file's text into canonical addresses and blocks, in file order.
pub fn parse_blocklist(text: &str) -> Result<Vec<String>, BlocklistError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, raw) in text.lines().enumerate() {
        let entry = raw.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let canonical = parse_entry(entry).map_err(|reason| BlocklistError::Invalid {
            line: i + 1,
            text: shown(raw),
            reason,
        })?;
        if seen.insert(canonical.clone()) {
            if out.len() == MAX_ENTRIES {
                return Err(BlocklistError::TooMany { limit: MAX_ENTRIES });
            }
            out.push(canonical);
        }
    }
    Ok(out)
}

/// One entry (comment and blanks already removed) in canonical form, or why not.
fn parse_entry(entry: &str) -> Result<String, String> {
    // Only these characters can appear in an address or a block; checking first gives one
    // clear reason for every hostile line, whatever the parser would have said.
    if let Some(c) = entry
        .chars()
        .find(|c| !(c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '/')))
    {
        return Err(if c.is_whitespace() {
            "more than one entry on the line (one address or block per line)".to_string()
        } else {
            format!("{:?} cannot appear in an IP address or CIDR block", c)
        });
    }
    let (addr, prefix) = match entry.split_once('/') {
        None => (entry, None),
        Some((a, p)) => (a, Some(p)),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IPv4 or IPv6 address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => {
            if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("prefix {p:?} is not a number"));
            }
            let n: u32 = p
                .parse()
                .map_err(|_| format!("prefix {p:?} is not a number"))?;
            if n > max {
                return Err(format!(
                    "prefix /{n} is out of range for an {} address (0 to {max})",
                    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
                ));
            }
            n
        }
    };
    if network(ip, prefix) != ip {
        return Err(format!(
            "host bits are set in {ip}/{prefix}; the block is {}/{prefix}, the address is {ip}",
            network(ip, prefix)
        ));
    }
    let covers = |other: IpAddr| network(other, prefix) == ip;
    let (loopback, unspecified) = match ip {
        IpAddr::V4(_) => (
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        ),
        IpAddr::V6(_) => (
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        ),
    };
    if covers(loopback) || ip.is_loopback() {
        return Err(
            "covers the loopback address, which neo-ir and the local load balancer use to reach \
             the node"
                .to_string(),
        );
    }
    if covers(unspecified) {
        return Err(
            "covers the unspecified address (0.0.0.0 or ::), not a remote host".to_string(),
        );
    }
    Ok(if prefix == max {
        ip.to_string()
    } else {
        format!("{ip}/{prefix}")
    })
}

/// `ip` with every bit after the first `prefix` cleared.
fn network(ip: IpAddr, prefix: u32) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

/// A line as shown in an error: at most [`CLIP`] characters, control characters escaped.
fn shown(line: &str) -> String {
    let mut out = String::new();
    for (n, c) in line.chars().enumerate() {
        if n == CLIP {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_masks_by_prefix() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(network(ip, 8).to_string(), "10.0.0.0");
        assert_eq!(network(ip, 0).to_string(), "0.0.0.0");
        assert_eq!(network(ip, 32), ip);
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(network(ip, 32).to_string(), "2001:db8::");
        assert_eq!(network(ip, 128), ip);
    }

    #[test]
    fn shown_clips_and_escapes() {
        assert_eq!(shown("a\tb\u{1b}[31m"), "a\\tb\\u{1b}[31m");
        let long = "x".repeat(200);
        assert_eq!(shown(&long).chars().count(), CLIP + 1);
    }
}
