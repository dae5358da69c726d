//! Node metrics: a tolerant parser of the Prometheus text exposition format (version 0.0.4,
//! what neo-rs and neo-go's Prometheus Go client serve on `/metrics`), the extraction of the
//! few values neo-ir reads into a [`NodeMetrics`], and [`Prober::scrape`], which GETs the
//! metrics (and, for neo-rs, `/healthz` and `/readyz`) under the client's limits.
//!
//! The parser never fails and never panics: a line it cannot read is counted in
//! [`Exposition::bad_lines`] and skipped, so one odd line from a node never hides the rest.

use jiff::Timestamp;
use neo_ir_core::telemetry::NodeMetrics;

use crate::client::{check_status, Prober};
use crate::error::ProbeError;

/// One sample line: `name{label="value",...} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// Label pairs in the order written, values unescaped.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// The optional timestamp, in milliseconds since the Unix epoch.
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a `# HELP` or `# TYPE` line said about a metric family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Family {
    pub name: String,
    /// `counter`, `gauge`, `histogram`, `summary`, `untyped`, ... as written.
    pub kind: Option<String>,
    /// The help text, unescaped.
    pub help: Option<String>,
}

/// Everything read from one exposition body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    /// Sample lines in the order written.
    pub samples: Vec<Sample>,
    /// Families announced by `# HELP` / `# TYPE` lines, in the order first seen.
    pub families: Vec<Family>,
    /// Lines that were neither blank, a comment, nor a readable sample.
    pub bad_lines: usize,
}

impl Exposition {
    /// Samples named `name`, in the order written.
    pub fn samples_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// Whether any sample or `# HELP` / `# TYPE` line has a name starting with `prefix`.
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.samples.iter().any(|s| s.name.starts_with(prefix))
            || self.families.iter().any(|f| f.name.starts_with(prefix))
    }

    fn family_mut(&mut self, name: &str) -> &mut Family {
        let i = match self.families.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.families.push(Family {
                    name: name.to_string(),
                    ..Family::default()
                });
                self.families.len() - 1
            }
        };
        &mut self.families[i]
    }
}

/// Parse a Prometheus text exposition body. Tolerant: blank lines, CRLF line ends, comments,
/// `# HELP` / `# TYPE`, escaped label values (`\"`, `\\`, `\n`), `NaN`, `+Inf`, `-Inf`,
/// exponent floats and an optional timestamp are read; an OpenMetrics exemplar (`# {...}`
/// after the value) is ignored; any other unreadable line is counted in `bad_lines`.
pub fn parse_exposition(text: &str) -> Exposition {
    let mut out = Exposition::default();
    // `lines` splits on `\n` and drops a `\r` before it.
    for line in text.lines() {
        let line = line.trim_matches(is_blank);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            read_comment(comment, &mut out);
            continue;
        }
        match parse_sample(line) {
            Some(s) => out.samples.push(s),
            None => out.bad_lines += 1,
        }
    }
    out
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\r'
}

/// A `#` line: `HELP name text`, `TYPE name kind`, or any other comment (ignored).
fn read_comment(rest: &str, out: &mut Exposition) {
    let rest = rest.trim_start_matches(is_blank);
    let (keyword, rest) = split_token(rest);
    if keyword != "HELP" && keyword != "TYPE" {
        return;
    }
    let (name, text) = split_token(rest);
    if !is_metric_name(name) {
        // `# HELP` with no name or a broken one: a comment like any other.
        return;
    }
    let family = out.family_mut(name);
    if keyword == "HELP" {
        family.help = Some(unescape(text, false));
    } else {
        let (kind, _) = split_token(text);
        if !kind.is_empty() {
            family.kind = Some(kind.to_string());
        }
    }
}

/// The first blank-separated token of `s` and the rest, blanks before it removed.
fn split_token(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches(is_blank);
    match s.find(is_blank) {
        Some(i) => (&s[..i], s[i..].trim_start_matches(is_blank)),
        None => (s, ""),
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Undo the exposition escapes: `\\` and `\n` everywhere, `\"` in label values. An unknown
/// escape is kept as written.
fn unescape(s: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// One sample line (already trimmed, not a comment); `None` when it cannot be read.
fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line
        .find(|c: char| c == '{' || is_blank(c))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return None;
    }
    let mut rest = line[name_end..].trim_start_matches(is_blank);
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(after_brace)?;
        labels = parsed;
        rest = after;
    }
    let (value, rest) = split_token(rest);
    let value = parse_value(value)?;
    let (ts, rest) = split_token(rest);
    let timestamp_ms = if ts.is_empty() {
        None
    } else if ts.starts_with('#') {
        // An exemplar right after the value.
        return Some(Sample {
            name: name.to_string(),
            labels,
            value,
            timestamp_ms: None,
        });
    } else {
        Some(parse_timestamp(ts)?)
    };
    // Anything after the timestamp must be an exemplar.
    if !rest.is_empty() && !rest.starts_with('#') {
        return None;
    }
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
        timestamp_ms,
    })
}

/// The label pairs after `{` up to the closing `}`, and what follows it.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches(is_blank);
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = s.find('=')?;
        let name = s[..eq].trim_matches(is_blank);
        if !is_label_name(name) {
            return None;
        }
        s = s[eq + 1..].trim_start_matches(is_blank);
        s = s.strip_prefix('"')?;
        let end = closing_quote(s)?;
        labels.push((name.to_string(), unescape(&s[..end], true)));
        s = s[end + 1..].trim_start_matches(is_blank);
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if !s.starts_with('}') {
            return None;
        }
    }
}

/// Byte index of the `"` closing a label value (escapes skipped).
fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Some(i);
        }
    }
    None
}

/// A sample value as Go's `strconv.ParseFloat` writes it: decimals, exponents, `NaN`,
/// `+Inf`, `-Inf` (case-insensitive, as Go reads them).
fn parse_value(s: &str) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    // Rust reads "inf", "infinity" and "nan" in any case, with an optional sign, like Go.
    s.parse::<f64>().ok()
}

/// A timestamp: an integer number of milliseconds (a float is accepted and truncated, as
/// some exporters write one).
fn parse_timestamp(s: &str) -> Option<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    let f = s.parse::<f64>().ok()?;
    (f.is_finite() && f.abs() < 9.0e18).then_some(f as i64)
}

/// neo-rs metric families start with this.
const NEO_RS_PREFIX: &str = "neo_node_";
/// neo-go metric families start with this.
const NEO_GO_PREFIX: &str = "neogo_";

const MEMORY: &[&str] = &["process_resident_memory_bytes"];
const CPU: &[&str] = &["process_cpu_seconds_total"];
const PEERS: &[&str] = &["neo_node_connected_peers", "neogo_peers_connected"];
/// neo-go 0.120+ says `neogo_block_height`, up to 0.118 `neogo_current_block_height`.
const HEIGHT: &[&str] = &[
    "neo_node_ledger_height",
    "neogo_block_height",
    "neogo_current_block_height",
];

/// The values neo-ir reads from a metrics body. Only these fields are set (`at`, health
/// and `error` are the scrape's). A missing metric, or one whose value is negative, NaN,
/// infinite or too big, leaves its field `None`.
pub fn node_metrics(text: &str) -> NodeMetrics {
    metrics_from(&parse_exposition(text))
}

/// [`node_metrics`] from an already parsed body.
pub fn metrics_from(exp: &Exposition) -> NodeMetrics {
    let implementation = if exp.has_prefix(NEO_RS_PREFIX) {
        "neo-rs"
    } else if exp.has_prefix(NEO_GO_PREFIX) {
        "neo-go"
    } else {
        "unknown"
    };
    NodeMetrics {
        implementation: implementation.to_string(),
        memory_bytes: first_value(exp, MEMORY, to_u64),
        cpu_seconds_total: first_value(exp, CPU, non_negative),
        peers: first_value(exp, PEERS, to_u64),
        height: first_value(exp, HEIGHT, to_u64),
        ..NodeMetrics::default()
    }
}

/// The first usable value among the samples of `names`, tried in that order.
fn first_value<T>(exp: &Exposition, names: &[&str], conv: fn(f64) -> Option<T>) -> Option<T> {
    names
        .iter()
        .find_map(|n| exp.samples_named(n).find_map(|s| conv(s.value)))
}

fn non_negative(v: f64) -> Option<f64> {
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// A gauge as a count: finite, not negative, below 2^64; rounded (Prometheus prints big
/// gauges as `3.278158e+06`).
fn to_u64(v: f64) -> Option<u64> {
    // 2^64 as f64 is exact; `as` saturates, but a value that large is not a count.
    const LIMIT: f64 = 18_446_744_073_709_551_616.0;
    let r = non_negative(v)?.round();
    (r < LIMIT).then_some(r as u64)
}

/// `Accept` of a metrics GET: the classic text format, never protobuf or OpenMetrics.
const METRICS_ACCEPT: &str =
    "text/plain; version=0.0.4; charset=utf-8, text/plain;q=0.9, */*;q=0.1";

impl Prober {
    /// GET a Prometheus metrics URL (no credentials, the client's timeout, body limit and
    /// concurrency bound) and return the body as text (invalid UTF-8 replaced).
    pub async fn metrics_text(&self, metrics_url: &str) -> Result<String, ProbeError> {
        let (status, body) = self
            .get_limited(metrics_url, METRICS_ACCEPT, "metrics")
            .await?;
        check_status(status)?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// One telemetry scrape of a node: its metrics, and when `health_base` is given (the
    /// node's telemetry base URL, e.g. `http://127.0.0.1:9100`), neo-rs `/healthz` and
    /// `/readyz` too, all three at once, each GET under its own concurrency slot. Never
    /// fails: a failure sets `error` to `"<kind>: <message>"` (the metrics failure first,
    /// else the first health failure) and leaves the fields it would have filled `None`. A
    /// body with unreadable lines and no sample at all is `malformed`. `at` is when the
    /// scrape started.
    pub async fn scrape(&self, metrics_url: &str, health_base: Option<&str>) -> NodeMetrics {
        let at = Timestamp::now();
        let health = async {
            match health_base {
                Some(base) => Some(tokio::join!(self.healthz(base), self.readyz(base))),
                None => None,
            }
        };
        let (text, health) = tokio::join!(self.metrics_text(metrics_url), health);

        let mut errors: Vec<ProbeError> = Vec::new();
        let mut out = match text {
            Ok(text) => {
                let exp = parse_exposition(&text);
                if exp.samples.is_empty() && exp.bad_lines > 0 {
                    // An HTML page, a JSON answer, a name list: not a metrics endpoint.
                    errors.push(ProbeError::Malformed(format!(
                        "no Prometheus sample in the metrics body ({} unreadable lines)",
                        exp.bad_lines
                    )));
                } else if exp.bad_lines > 0 {
                    tracing::debug!(
                        bad_lines = exp.bad_lines,
                        "metrics: unreadable lines skipped"
                    );
                }
                metrics_from(&exp)
            }
            Err(e) => {
                errors.push(e);
                NodeMetrics {
                    implementation: "unknown".to_string(),
                    ..NodeMetrics::default()
                }
            }
        };
        if let Some((healthz, readyz)) = health {
            match healthz {
                Ok(ok) => out.healthz_ok = ok,
                Err(e) => errors.push(e),
            }
            match readyz {
                Ok(ok) => out.readyz_ok = ok,
                Err(e) => errors.push(e),
            }
        }
        out.at = Some(at);
        out.error = errors.first().map(describe);
        if let Some(e) = &out.error {
            tracing::debug!(error = %e, "telemetry scrape failed");
        }
        out
    }
}

/// `"<kind>: <message>"`, the form of `NodeMetrics::error`.
pub fn describe(e: &ProbeError) -> String {
    format!("{}: {e}", e.kind().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/");

    fn fixture(rel: &str) -> String {
        std::fs::read_to_string(format!("{FIXTURES}{rel}"))
            .unwrap_or_else(|e| panic!("reading fixture {rel}: {e}"))
    }

    fn one(line: &str) -> Sample {
        let exp = parse_exposition(line);
        assert_eq!(exp.bad_lines, 0, "{line:?}");
        assert_eq!(exp.samples.len(), 1, "{line:?}");
        exp.samples.into_iter().next().unwrap()
    }

    fn bad(line: &str) {
        let exp = parse_exposition(line);
        assert_eq!(
            (exp.samples.len(), exp.bad_lines),
            (0, 1),
            "{line:?} gave {:?}",
            exp.samples
        );
    }

    #[test]
    fn neo_rs_fixture() {
        let text = fixture("neo-rs-0.14-testnet-genesis/get-metrics.txt");
        let exp = parse_exposition(&text);
        assert_eq!(exp.bad_lines, 0);
        // Every sample line of the capture is read.
        let sample_lines = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .count();
        assert_eq!(exp.samples.len(), sample_lines);
        // Every family in the names list is announced by a TYPE line of that kind, except
        // the one the list notes as absent from this body (registered lazily).
        let names = fixture("neo-rs-0.14-testnet-genesis/metric-names.txt");
        let mut checked = 0;
        for line in names.lines().filter(|l| !l.is_empty()) {
            let (name, kind) = line.split_once('\t').unwrap();
            let fam = exp.families.iter().find(|f| f.name == name);
            let fam_kind = fam.and_then(|f| f.kind.as_deref());
            if kind.contains("NOT present") {
                assert_eq!(fam_kind, None, "family {name}");
            } else {
                assert_eq!(fam_kind, Some(kind), "family {name}");
                checked += 1;
            }
        }
        assert_eq!(checked, 83);
        let info = exp.samples_named("neo_node_info").next().unwrap();
        assert_eq!(info.label("version"), Some("0.14.0"));
        assert_eq!(info.label("network"), Some("0x3554334E"));
        let up = exp.samples_named("neo_node_uptime_seconds").next().unwrap();
        assert_eq!(up.value, 9.125821192);

        let m = node_metrics(&text);
        assert_eq!(m.implementation, "neo-rs");
        assert_eq!(m.peers, Some(0));
        assert_eq!(m.height, Some(0));
        // neo-rs 0.14 exports no `process_*` families: RSS (about 50 MB in the capture's
        // notes) comes from the host agent, never from the MDBX map size.
        assert_eq!(m.memory_bytes, None);
        assert_eq!(m.cpu_seconds_total, None);
        assert_eq!(
            (m.at, m.healthz_ok, m.readyz_ok, &m.error),
            (None, None, None, &None)
        );
    }

    #[test]
    fn neo_rs_with_process_families() {
        // The same body as a neo-rs build with the process collector would serve it.
        let text = format!(
            "{}# HELP process_resident_memory_bytes Resident memory size in bytes.\n\
             # TYPE process_resident_memory_bytes gauge\n\
             process_resident_memory_bytes 5.2822016e+07\n\
             # TYPE process_virtual_memory_bytes gauge\n\
             process_virtual_memory_bytes 2.74877906944e+11\n\
             process_cpu_seconds_total 1.37\n",
            fixture("neo-rs-0.14-testnet-genesis/get-metrics.txt")
        );
        let m = node_metrics(&text);
        assert_eq!(m.implementation, "neo-rs");
        assert_eq!(m.memory_bytes, Some(52_822_016));
        assert_eq!(m.cpu_seconds_total, Some(1.37));
    }

    #[test]
    fn neo_go_samples() {
        let m = node_metrics(&fixture("neo-go/metrics-sample-issue2971.txt"));
        assert_eq!(m.implementation, "neo-go");
        assert_eq!(m.height, Some(3_278_158));
        assert_eq!(m.peers, None);

        let text = fixture("neo-go/metrics-sample-issue3682.txt");
        let exp = parse_exposition(&text);
        assert_eq!(exp.bad_lines, 0);
        assert_eq!(exp.samples.len(), 1);
        assert_eq!(exp.samples[0].labels, vec![("version".into(), "".into())]);
        assert_eq!(exp.families[0].help.as_deref(), Some("NeoGo version"));
        assert_eq!(exp.families[0].kind.as_deref(), Some("gauge"));
        assert_eq!(node_metrics(&text).implementation, "neo-go");
    }

    #[test]
    fn neo_go_heights_by_version() {
        let new = "neogo_block_height 12\nneogo_peers_connected 7\n";
        let old = "neogo_current_block_height 11\nneogo_peers_connected 3\n";
        let m = node_metrics(new);
        assert_eq!((m.height, m.peers), (Some(12), Some(7)));
        let m = node_metrics(old);
        assert_eq!((m.height, m.peers), (Some(11), Some(3)));
        assert_eq!(m.implementation, "neo-go");
    }

    #[test]
    fn neo_go_name_lists_are_not_exposition_text() {
        // The neo-go `metrics*.txt` files are tab-separated name/type/help lists: every line
        // is unreadable as a sample, and nothing is made up from them.
        for rel in [
            "neo-go/metrics.txt",
            "neo-go/metrics-v0.118.0.txt",
            "neo-go/metrics-v0.120.0.txt",
        ] {
            let text = fixture(rel);
            let exp = parse_exposition(&text);
            assert!(exp.samples.is_empty(), "{rel}: {:?}", exp.samples.first());
            assert_eq!(
                exp.bad_lines,
                text.lines().filter(|l| !l.is_empty()).count()
            );
            let m = node_metrics(&text);
            assert_eq!(m.implementation, "unknown", "{rel}");
            assert_eq!((m.height, m.peers), (None, None), "{rel}");
        }
    }

    #[test]
    fn values() {
        assert!(one("a NaN").value.is_nan());
        assert_eq!(one("a +Inf").value, f64::INFINITY);
        assert_eq!(one("a -Inf").value, f64::NEG_INFINITY);
        assert_eq!(one("a 3.278158e+06").value, 3_278_158.0);
        assert_eq!(one("a 1E-3").value, 0.001);
        assert_eq!(one("a -0.5").value, -0.5);
        assert_eq!(one("a 42").value, 42.0);
        bad("a");
        bad("a abc");
        bad("a 1 2 3");
        bad("a 1 notatimestamp");
    }

    #[test]
    fn timestamps_blanks_and_line_ends() {
        let s = one("http_requests_total{method=\"post\"} 1027 1395066363000");
        assert_eq!(s.timestamp_ms, Some(1_395_066_363_000));
        assert_eq!(one("a 1 -5").timestamp_ms, Some(-5));
        assert_eq!(one("a\t1\t\t2").timestamp_ms, Some(2));
        let exp =
            parse_exposition("\r\n\n# HELP a An a.\r\n# TYPE a gauge\r\na 1\r\n\r\nb 2\n  \n");
        assert_eq!(exp.bad_lines, 0);
        assert_eq!(exp.samples.len(), 2);
        assert_eq!(exp.families[0].help.as_deref(), Some("An a."));
        assert_eq!(exp.families[0].kind.as_deref(), Some("gauge"));
        // OpenMetrics exemplars are ignored.
        let s = one("foo_bucket{le=\"1\"} 3 # {trace_id=\"x\"} 0.5");
        assert_eq!((s.value, s.timestamp_ms), (3.0, None));
        let s = one("foo_bucket{le=\"1\"} 3 100 # {trace_id=\"x\"} 0.5");
        assert_eq!(s.timestamp_ms, Some(100));
        // Comments and broken HELP/TYPE lines are not bad lines.
        let exp = parse_exposition("# just a comment\n#\n# HELP\n# TYPE 1bad gauge\n# EOF\n");
        assert_eq!(
            (exp.samples.len(), exp.bad_lines, exp.families.len()),
            (0, 0, 0)
        );
    }

    #[test]
    fn labels_and_escapes() {
        let s = one(
            r#"msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9"#,
        );
        assert_eq!(s.label("path"), Some(r"C:\DIR\FILE.TXT"));
        assert_eq!(s.label("error"), Some("Cannot find file:\n\"FILE.TXT\""));
        assert_eq!(s.value, 1_458_255_915.0);
        let s = one(r#"a{x="}",y="{,=",} 1"#);
        assert_eq!(
            s.labels,
            vec![("x".into(), "}".into()), ("y".into(), "{,=".into())]
        );
        let s = one(r#"a { x = "1" , y="é\t" } 2"#);
        assert_eq!(
            s.labels,
            vec![("x".into(), "1".into()), ("y".into(), "é\\t".into())]
        );
        assert!(one("a{} 1").labels.is_empty());
        let exp = parse_exposition("# HELP a Line one\\nback\\\\slash\na 1\n");
        assert_eq!(
            exp.families[0].help.as_deref(),
            Some("Line one\nback\\slash")
        );
        for b in [
            r#"a{x="1" 1"#,
            r#"a{x=1} 1"#,
            r#"a{x="1"y="2"} 1"#,
            r#"a{1x="1"} 1"#,
            r#"a{x="unterminated} 1"#,
            r#"{x="1"} 1"#,
            "1a 1",
            "a-b 1",
        ] {
            bad(b);
        }
    }

    #[test]
    fn unusable_values_leave_fields_empty() {
        let text = "process_resident_memory_bytes -1\nprocess_cpu_seconds_total NaN\n\
                    neo_node_connected_peers +Inf\nneo_node_ledger_height 1e300\n";
        let m = node_metrics(text);
        assert_eq!(m.implementation, "neo-rs");
        assert_eq!(
            (m.memory_bytes, m.cpu_seconds_total, m.peers, m.height),
            (None, None, None, None)
        );
        // A later usable sample of the same name is taken.
        let m = node_metrics("neo_node_ledger_height NaN\nneo_node_ledger_height 5\n");
        assert_eq!(m.height, Some(5));
        assert_eq!(node_metrics("").implementation, "unknown");
        assert_eq!(node_metrics("up 1\n").implementation, "unknown");
    }

    #[test]
    fn describe_uses_failure_kind_names() {
        assert_eq!(
            describe(&ProbeError::Refused("os error 111".into())),
            "refused: connection refused"
        );
        assert!(describe(&ProbeError::TooLarge {
            limit: 1,
            declared: None
        })
        .starts_with("too_large: "));
    }

    /// Lines made of the exposition format's own pieces, so the property tests reach deep
    /// into the parser rather than stopping at the first character.
    fn exposition_like() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("# HELP ".to_string()),
            Just("# TYPE ".to_string()),
            Just("neo_node_ledger_height".to_string()),
            Just("neogo_peers_connected".to_string()),
            Just("process_resident_memory_bytes".to_string()),
            Just("{".to_string()),
            Just("}".to_string()),
            Just("=".to_string()),
            Just("\"".to_string()),
            Just("\\".to_string()),
            Just(",".to_string()),
            Just(" ".to_string()),
            Just("\t".to_string()),
            Just("\r\n".to_string()),
            Just("\n".to_string()),
            Just("NaN".to_string()),
            Just("+Inf".to_string()),
            Just("-Inf".to_string()),
            Just("#".to_string()),
            "[a-z_]{1,6}",
            any::<f64>().prop_map(|f| f.to_string()),
            any::<i64>().prop_map(|i| i.to_string()),
            any::<char>().prop_map(|c| c.to_string()),
        ];
        prop::collection::vec(piece, 0..64).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parse_never_panics_on_any_string(s in any::<String>()) {
            let exp = parse_exposition(&s);
            prop_assert!(exp.samples.len() + exp.bad_lines <= s.lines().count());
            let _ = node_metrics(&s);
        }

        #[test]
        fn parse_never_panics_on_exposition_like_text(s in exposition_like()) {
            let exp = parse_exposition(&s);
            prop_assert!(exp.samples.len() + exp.bad_lines <= s.lines().count());
            let m = node_metrics(&s);
            prop_assert!(["neo-rs", "neo-go", "unknown"].contains(&m.implementation.as_str()));
        }

        #[test]
        fn escaped_label_values_round_trip(v in any::<String>(), x in any::<f64>()) {
            let escaped = v.replace('\\', "\\\\").replace('\n', "\\n").replace('"', "\\\"");
            let line = format!("m{{l=\"{escaped}\"}} {x:e}");
            let exp = parse_exposition(&line);
            prop_assert_eq!(exp.bad_lines, 0);
            prop_assert_eq!(exp.samples.len(), 1);
            prop_assert_eq!(&exp.samples[0].labels[0].1, &v);
            if x.is_nan() {
                prop_assert!(exp.samples[0].value.is_nan());
            } else {
                prop_assert_eq!(exp.samples[0].value, x);
            }
        }

        #[test]
        fn counts_survive_any_gauge_spelling(n in 0u64..(1u64 << 53)) {
            for text in [format!("neogo_block_height {n}"), format!("neogo_block_height {:e}", n as f64)] {
                prop_assert_eq!(node_metrics(&text).height, Some(n));
            }
        }
    }
}
