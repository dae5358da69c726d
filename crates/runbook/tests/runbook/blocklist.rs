//! The block_ips file parser: good files, bad lines by number, hostile values, and
//! properties over generated lists.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use neo_ir_runbook::blocklist::MAX_ENTRIES;
use neo_ir_runbook::{parse_blocklist, BlocklistError};
use proptest::prelude::*;

#[test]
fn a_good_file_gives_canonical_entries_in_order() {
    let text = "\u{feff}# attackers seen 2024-05-01\r\n\
                203.0.113.7\r\n\
                \r\n\
                   198.51.100.0/24   # their /24\n\
                2001:0DB8:0000:0000:0000:0000:0000:0001\n\
                2001:db8:abcd::/48\n\
                203.0.113.7\n\
                192.0.2.1/32\n\
                \t# indented comment\n\
                ::ffff:192.0.2.9\n";
    assert_eq!(
        parse_blocklist(text).unwrap(),
        [
            "203.0.113.7",
            "198.51.100.0/24",
            "2001:db8::1",
            "2001:db8:abcd::/48",
            "192.0.2.1",
            "::ffff:192.0.2.9",
        ]
    );
    assert_eq!(parse_blocklist("").unwrap(), Vec::<String>::new());
    assert_eq!(
        parse_blocklist("# nothing\n\n").unwrap(),
        Vec::<String>::new()
    );
}

fn error(text: &str) -> (usize, String, String) {
    match parse_blocklist(text) {
        Err(BlocklistError::Invalid { line, text, reason }) => (line, text, reason),
        other => panic!("{text:?} gave {other:?}"),
    }
}

#[test]
fn a_bad_line_fails_the_file_with_its_number() {
    let (line, text, reason) = error("203.0.113.7\n\n# ok so far\n1.2.3.4; rm -rf /\n5.6.7.8\n");
    assert_eq!(line, 4);
    assert_eq!(text, "1.2.3.4; rm -rf /");
    assert!(reason.contains("';'"), "{reason}");
    let e = parse_blocklist("1.2.3.4\nnot-an-ip\n").unwrap_err();
    assert!(e.to_string().starts_with("line 2: "), "{e}");
    assert!(e.to_string().contains("not-an-ip"), "{e}");
}

#[test]
fn hostile_and_mistaken_values_are_refused_each_with_a_reason() {
    for (bad, says) in [
        ("1.2.3.4; rm -rf /", "cannot appear"),
        ("$(id)", "cannot appear"),
        ("`id`", "cannot appear"),
        ("-f", "cannot appear"),
        ("--flush", "cannot appear"),
        ("1.2.3.4 5.6.7.8", "more than one entry"),
        ("1.2.3.4/33", "out of range"),
        ("2001:db8::/129", "out of range"),
        ("1.2.3.4/", "not a number"),
        ("1.2.3.4/1/2", "not a number"),
        ("1.2.3.4/0024", "not a number"),
        ("999.0.0.1", "not an IPv4 or IPv6 address"),
        ("01.2.3.4", "not an IPv4 or IPv6 address"),
        ("1.2.3", "not an IPv4 or IPv6 address"),
        ("10.0.0.1/8", "host bits are set"),
        ("0.0.0.0/0", "loopback"),
        ("127.0.0.1", "loopback"),
        ("127.5.0.0/16", "loopback"),
        ("::1", "loopback"),
        ("::/0", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("fe80::1%eth0", "cannot appear"),
        ("example.org", "cannot appear"),
    ] {
        let (line, text, reason) = error(&format!("# header\n{bad}\n"));
        assert_eq!(line, 2, "{bad}");
        assert_eq!(text, bad);
        assert!(reason.contains(says), "{bad}: {reason}");
    }
    // control characters are escaped and long lines clipped in the error
    let (_, text, _) = error("1.2.3.4\u{1b}[2J\n");
    assert_eq!(text, "1.2.3.4\\u{1b}[2J");
    let (_, text, _) = error(&"9".repeat(500));
    assert!(text.chars().count() <= 81 && text.ends_with('…'), "{text}");
}

#[test]
fn at_most_65536_entries() {
    let list: String = (0..=MAX_ENTRIES as u32)
        .map(|i| format!("{}\n", Ipv4Addr::from(0x0a00_0000 + i)))
        .collect();
    assert_eq!(
        parse_blocklist(&list).unwrap_err(),
        BlocklistError::TooMany { limit: MAX_ENTRIES }
    );
    // duplicates do not count
    let at_limit: String = list
        .lines()
        .take(MAX_ENTRIES)
        .map(|l| format!("{l}\n{l}\n"))
        .collect();
    assert_eq!(parse_blocklist(&at_limit).unwrap().len(), MAX_ENTRIES);
}

/// Addresses a blocklist may hold (not loopback or unspecified).
fn blockable() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    ]
    .prop_filter("not loopback or unspecified", |ip| {
        !ip.is_loopback() && !ip.is_unspecified()
    })
}

proptest! {
    #[test]
    fn any_list_of_addresses_round_trips(
        ips in prop::collection::vec(blockable(), 0..40),
        upper in any::<bool>(),
    ) {
        let text: String = ips
            .iter()
            .map(|ip| {
                let s = ip.to_string();
                format!("  {}  # note\n", if upper { s.to_uppercase() } else { s })
            })
            .collect();
        let mut expected: Vec<String> = Vec::new();
        for ip in &ips {
            if !expected.contains(&ip.to_string()) {
                expected.push(ip.to_string());
            }
        }
        prop_assert_eq!(parse_blocklist(&text).unwrap(), expected);
    }

    #[test]
    fn any_line_with_a_shell_metacharacter_is_refused(
        ip in blockable(),
        meta in prop::sample::select(vec![
            ';', '|', '&', '$', '`', '(', ')', '<', '>', '*', '?', '!', '{', '}', '[', ']',
            '\'', '"', '\\', '~', '=', '-', ' ', '\t', '\u{0}',
        ]),
        at in any::<prop::sample::Index>(),
    ) {
        let s = ip.to_string();
        let pos = at.index(s.len() + 1);
        let line = format!("{}{meta}{}", &s[..pos], &s[pos..]);
        let text = format!("192.0.2.1\n{line}\n");
        match parse_blocklist(&text) {
            Err(BlocklistError::Invalid { line: n, .. }) => prop_assert_eq!(n, 2),
            // whitespace at either end is trimmed: then the address itself is fine
            Ok(v) if meta.is_whitespace() && (pos == 0 || pos == s.len()) => {
                prop_assert_eq!(v.len(), if ip.to_string() == "192.0.2.1" { 1 } else { 2 });
            }
            other => prop_assert!(false, "{:?} gave {:?}", line, other),
        }
    }
}
