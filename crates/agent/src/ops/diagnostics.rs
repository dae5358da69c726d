//! The playbook's `incident_diagnostics.sh` as one archive, and the redaction every text in
//! it goes through first: values of keys named like passwords, secrets, tokens, private
//! keys, WIFs and `Authorization`, and the `user:pass@` part of URLs become `<redacted>`.

/// Key names whose values are secrets (matched case-insensitively as substrings of the key).
const SECRET_KEY_PARTS: [&str; 14] = [
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "authorization",
    "wif",
    "privatekey",
    "private_key",
    "private-key",
    "privkey",
    "apikey",
    "api_key",
    "api-key",
];

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// `text` with secrets replaced by `<redacted>`: the value after `key=`, `key:`,
/// `"key": "..."` or `--key VALUE` when the key names a secret (password, passwd, secret,
/// token, authorization — the whole header value —, wif, private key, api key), and the
/// user information of URLs (`http://user:pass@host` → `http://<redacted>@host`).
pub fn redact(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| redact_key_values(&redact_url_userinfo(line)))
        .collect()
}

fn is_secret_key(key: &str) -> bool {
    let k = key.trim_start_matches('-').to_ascii_lowercase();
    k == "pass" || k == "pwd" || SECRET_KEY_PARTS.iter().any(|p| k.contains(p))
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
}

fn redact_url_userinfo(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(k) = rest.find("://") {
        let start = k + 3;
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let end = after
            .find(|c: char| c.is_whitespace() || "/?#\"'<>".contains(c))
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str(REDACTED);
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn redact_key_values(line: &str) -> String {
    let b = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let (mut i, mut copied) = (0usize, 0usize);
    while i < b.len() {
        if !is_key_byte(b[i]) || (i > 0 && is_key_byte(b[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_key_byte(b[i]) {
            i += 1;
        }
        let key = &line[start..i];
        if !is_secret_key(key) {
            continue;
        }
        let flag = key.starts_with('-');
        let mut p = i;
        if p < b.len() && (b[p] == b'"' || b[p] == b'\'') {
            p += 1;
        }
        let before_space = p;
        while p < b.len() && (b[p] == b' ' || b[p] == b'\t') {
            p += 1;
        }
        if p < b.len() && (b[p] == b'=' || b[p] == b':') {
            p += 1;
        } else if !(flag && p > before_space) {
            // `--password VALUE` needs the space; anything else needs `=` or `:`
            continue;
        }
        while p < b.len() && (b[p] == b' ' || b[p] == b'\t') {
            p += 1;
        }
        if p >= b.len() {
            continue;
        }
        let (vs, ve) = if b[p] == b'"' || b[p] == b'\'' {
            let q = b[p];
            let mut e = p + 1;
            while e < b.len() && b[e] != q {
                e += if b[e] == b'\\' { 2 } else { 1 };
            }
            (p + 1, e.min(b.len()))
        } else if key.to_ascii_lowercase().contains("authorization") {
            // `Authorization: Bearer xyz`: the scheme and the credentials, to the end of the
            // line or of the quotes the header sits in (`-H 'Authorization: ...'`)
            let line_end = line.trim_end_matches(['\r', '\n']).len().max(p);
            let quote = start
                .checked_sub(1)
                .map(|q| b[q])
                .filter(|q| *q == b'"' || *q == b'\'');
            let end = quote
                .and_then(|q| b[p..line_end].iter().position(|c| *c == q))
                .map_or(line_end, |k| p + k);
            (p, end)
        } else {
            let mut e = p;
            while e < b.len() && !(b[e].is_ascii_whitespace() || b",;&)}]\"'".contains(&b[e])) {
                e += 1;
            }
            (p, e)
        };
        if ve <= vs || &line[vs..ve] == REDACTED {
            i = i.max(p);
            continue;
        }
        out.push_str(&line[copied..vs]);
        out.push_str(REDACTED);
        copied = ve;
        i = ve;
    }
    out.push_str(&line[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets() {
        let cases = [
            ("password=hunter2", "password=<redacted>"),
            (
                "db_password = hunter2 next",
                "db_password = <redacted> next",
            ),
            (
                r#"{"Password": "hun\"ter2", "user": "bob"}"#,
                r#"{"Password": "<redacted>", "user": "bob"}"#,
            ),
            ("RPC_TOKEN: abc123", "RPC_TOKEN: <redacted>"),
            ("Authorization: Bearer abc.def", "Authorization: <redacted>"),
            (
                "curl -H 'authorization: Basic dTpw' x",
                "curl -H 'authorization: <redacted>' x",
            ),
            (
                "node --password hunter2 --port 1",
                "node --password <redacted> --port 1",
            ),
            (
                "wif=KxDgvEKzgSBPPfuVfw67oPQBSjidEiqTHURKSDL1R7yGaGYAeYnr",
                "wif=<redacted>",
            ),
            ("private_key: 0xdeadbeef", "private_key: <redacted>"),
            (
                "GET /x?access_token=abc&page=2",
                "GET /x?access_token=<redacted>&page=2",
            ),
            ("secret=a,secret2=b", "secret=<redacted>,secret2=<redacted>"),
            (
                "connect http://u:pw@host:8080/rpc failed",
                "connect http://<redacted>@host:8080/rpc failed",
            ),
            (
                "postgres://neo:s3cr3t@db/neo and https://h/ok",
                "postgres://<redacted>@db/neo and https://h/ok",
            ),
            (
                "ERROR block 5 failed: bad hash",
                "ERROR block 5 failed: bad hash",
            ),
            ("public key: 02abc", "public key: 02abc"),
            ("password=<redacted>", "password=<redacted>"),
            ("password:", "password:"),
            ("keypassword=é1 ü", "keypassword=<redacted> ü"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
        let multi = "a password=x\nb token=y\n";
        assert_eq!(redact(multi), "a password=<redacted>\nb token=<redacted>\n");
    }
}
