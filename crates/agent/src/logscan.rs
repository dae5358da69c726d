//! Error lines of the node's log: read at most the last 1 MiB of the log file, keep the last N
//! lines that look like errors; and the cleaning applied to every line the agent reports
//! (control characters and ANSI colour codes removed, long lines clipped).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// How much of the end of a log file is read.
pub const TAIL_BYTES: u64 = 1 << 20;
/// Longest line reported, in characters (longer lines are clipped with `…`).
pub const MAX_LINE_CHARS: usize = 1024;

const ERROR_WORDS: [&str; 5] = ["error", "fatal", "panic", "exception", "critical"];

/// Whether a log line looks like an error (error|fatal|panic|exception|critical, any case).
pub fn is_error_line(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    ERROR_WORDS.iter().any(|w| lower.contains(w))
}

/// The last `n` error-looking lines of `text`, oldest first, cleaned.
pub fn last_error_lines(text: &str, n: usize) -> Vec<String> {
    last_lines(text.lines().filter(|l| is_error_line(l)), n)
}

/// The last `n` non-blank lines, oldest first, cleaned.
pub fn last_lines<'a>(lines: impl DoubleEndedIterator<Item = &'a str>, n: usize) -> Vec<String> {
    let mut out: Vec<String> = lines
        .rev()
        .map(clean_line)
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .collect();
    out.reverse();
    out
}

/// Remove ANSI escape sequences and control characters (tabs become spaces), trim the line
/// end and clip to `MAX_LINE_CHARS`.
pub fn clean_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len().min(MAX_LINE_CHARS + 4));
    let mut chars = line.chars().peekable();
    let mut count = 0;
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params... final byte in '@'..='~'
            if chars.peek() == Some(&'[') {
                chars.next();
                for f in chars.by_ref() {
                    if ('@'..='~').contains(&f) {
                        break;
                    }
                }
            }
            continue;
        }
        let c = if c == '\t' { ' ' } else { c };
        if c.is_control() {
            continue;
        }
        if count == MAX_LINE_CHARS {
            out.push('…');
            break;
        }
        out.push(c);
        count += 1;
    }
    out.truncate(out.trim_end().len());
    out
}

/// The last `max` bytes of a file as (lossy) UTF-8. When the read starts mid-file, the first,
/// partial line is dropped.
pub fn read_tail(path: &Path, max: u64) -> io::Result<String> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(max);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity(len.min(max) as usize);
    f.take(max).read_to_end(&mut buf)?;
    let mut slice = &buf[..];
    if start > 0 {
        match slice.iter().position(|&b| b == b'\n') {
            Some(i) => slice = &slice[i + 1..],
            None => slice = &[],
        }
    }
    Ok(String::from_utf8_lossy(slice).into_owned())
}

/// The last `n` error lines of the log file at `path`, reading at most its last 1 MiB.
pub fn log_file_errors(path: &Path, n: usize) -> io::Result<Vec<String>> {
    Ok(last_error_lines(&read_tail(path, TAIL_BYTES)?, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn filters_error_lines() {
        let text = "INFO started\nERROR db: bad block\nwarn slow\nthread 'main' panicked at x\n\
                    Fatal: out of memory\nUnhandled Exception: System.IO\nCRITICAL disk\ninfo done\n";
        assert_eq!(
            last_error_lines(text, 3),
            vec![
                "Fatal: out of memory",
                "Unhandled Exception: System.IO",
                "CRITICAL disk"
            ]
        );
        assert_eq!(last_error_lines(text, 100).len(), 5);
        assert!(last_error_lines("all good\n", 5).is_empty());
    }

    #[test]
    fn cleans_lines() {
        assert_eq!(
            clean_line("\u{1b}[31mERROR\u{1b}[0m\tbad\r"),
            "ERROR bad".to_string()
        );
        assert_eq!(clean_line("a\u{0}b\u{7}c  "), "abc");
        let long = "x".repeat(5000);
        let c = clean_line(&long);
        assert_eq!(c.chars().count(), MAX_LINE_CHARS + 1);
        assert!(c.ends_with('…'));
    }

    #[test]
    fn tail_drops_partial_first_line() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"first error line\nsecond error\nthird error\n")
            .unwrap();
        let all = read_tail(f.path(), 1 << 20).unwrap();
        assert_eq!(all.lines().count(), 3);
        // the last 20 bytes start in the middle of "second error"
        let tail = read_tail(f.path(), 20).unwrap();
        assert_eq!(tail, "third error\n");
        let none = read_tail(f.path(), 5).unwrap();
        assert_eq!(none, "");
    }
}
