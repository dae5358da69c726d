//! The standalone node's log: lines in the shape of neo-rs's (tracing's default format: an
//! RFC 3339 UTC timestamp, the level right-aligned in five columns, the target, the message),
//! appended to a file or written to stderr. Errors carry `ERROR`, so the agent's log scanner
//! finds them; warnings and info lines are worded without error words.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The target printed on every line.
const TARGET: &str = "neo_ir_sim::node";

enum Sink {
    File(File),
    Stderr,
}

/// Where the node's lines go.
pub(crate) struct NodeLog {
    sink: Mutex<Sink>,
}

impl NodeLog {
    /// Appends to `path` (created if missing), or writes to stderr.
    pub fn open(path: Option<&Path>) -> io::Result<NodeLog> {
        let sink = match path {
            Some(p) => Sink::File(OpenOptions::new().create(true).append(true).open(p)?),
            None => Sink::Stderr,
        };
        Ok(NodeLog {
            sink: Mutex::new(sink),
        })
    }

    fn line(&self, level: &str, msg: &str) {
        // tracing's layout: `2026-07-14T10:00:00.123456Z  INFO target: message`
        let line = format!("{:.6} {level:>5} {TARGET}: {msg}\n", jiff::Timestamp::now());
        let mut sink = match self.sink.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        // a log line that cannot be written is dropped: the node keeps serving
        let _ = match &mut *sink {
            Sink::File(f) => f.write_all(line.as_bytes()),
            Sink::Stderr => io::stderr().write_all(line.as_bytes()),
        };
    }

    pub fn info(&self, msg: &str) {
        self.line("INFO", msg);
    }

    pub fn warn(&self, msg: &str) {
        self.line("WARN", msg);
    }

    pub fn error(&self, msg: &str) {
        self.line("ERROR", msg);
    }
}

/// Lets a repeated line through at most once per `every`.
pub(crate) struct Throttle {
    every: Duration,
    last: Option<Instant>,
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle { every, last: None }
    }

    /// True (and the clock restarts) when the last line is at least `every` ago.
    pub fn ready(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            return false;
        }
        self.last = Some(now);
        true
    }

    /// The next line goes through whenever it comes.
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_look_like_neo_rs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.log");
        let log = NodeLog::open(Some(&path)).expect("open");
        log.info("persisted block 3");
        log.error("IO error: lock /x/LOCK: already held by process");
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with("Z  INFO neo_ir_sim::node: persisted block 3"));
        assert!(lines[1].contains("Z ERROR neo_ir_sim::node: IO error: lock"));
        // 2026-07-14T10:00:00.123456Z
        let ts = lines[0].split_whitespace().next().expect("timestamp");
        assert!(ts.ends_with('Z') && ts.len() == 27, "{ts}");
    }

    #[test]
    fn throttle_lets_one_through() {
        let mut t = Throttle::new(Duration::from_secs(3600));
        assert!(t.ready());
        assert!(!t.ready());
        t.reset();
        assert!(t.ready());
    }
}
