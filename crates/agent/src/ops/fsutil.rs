//! File-system helpers for operations that touch the node's directories: a bounded walk that
//! never follows symbolic links (so it never leaves the tree it was given), directory sizes,
//! and the check that a name from a request is a plain file name.

use std::fs::Metadata;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Deepest directory level a walk descends to.
pub const MAX_DEPTH: usize = 64;
/// Most entries a walk visits.
pub const MAX_ENTRIES: usize = 2_000_000;

/// Entries under `root` (not `root` itself) for which `pick(file name, metadata)` holds;
/// symlinks are reported as themselves (their metadata is the link's) and never followed;
/// directories are descended into only when they are real directories. Fails when the walk
/// is longer than `MAX_ENTRIES` or passes `deadline`.
pub fn find(
    root: &Path,
    pick: &dyn Fn(&str, &Metadata) -> bool,
    deadline: Instant,
) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut visited = 0usize;
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            // the root must be readable; a subdirectory that vanished is skipped
            Err(e) if dir == root => return Err(e),
            Err(_) => continue,
        };
        for entry in entries {
            let entry = entry?;
            visited += 1;
            if visited > MAX_ENTRIES {
                return Err(io::Error::other(format!(
                    "more than {MAX_ENTRIES} entries under {}",
                    root.display()
                )));
            }
            if visited.is_multiple_of(1024) && Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("walking {} took too long", root.display()),
                ));
            }
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if pick(&name, &meta) {
                found.push(path.clone());
            }
            if meta.file_type().is_dir() && depth + 1 < MAX_DEPTH {
                stack.push((path, depth + 1));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Bytes of regular files under `path` (or of `path` itself when it is a file), links not
/// followed.
pub fn size_of(path: &Path, deadline: Instant) -> io::Result<u64> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return Ok(if meta.is_file() { meta.len() } else { 0 });
    }
    let files = find(path, &|_, m| m.is_file(), deadline)?;
    Ok(files
        .iter()
        .filter_map(|f| std::fs::symlink_metadata(f).ok())
        .map(|m| m.len())
        .sum())
}

/// A plain file name: not empty, not `.` or `..`, no `/`, no NUL or other control
/// character, at most 255 bytes.
pub fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 255
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}

/// `child` is `root` or below it, comparing canonical paths (both must exist).
pub fn is_within(root: &Path, child: &Path) -> bool {
    match (root.canonicalize(), child.canonicalize()) {
        (Ok(r), Ok(c)) => c.starts_with(r),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn walk_never_follows_links() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("LOCK"), "x").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("chain/sub")).unwrap();
        std::fs::write(root.join("LOCK"), "").unwrap();
        std::fs::write(root.join("chain/sub/a.tmp"), "12345").unwrap();
        std::fs::write(root.join("chain/keep.ldb"), "1").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let found = find(
            root,
            &|n, m| !m.is_dir() && (n == "LOCK" || n.ends_with(".tmp")),
            deadline,
        )
        .unwrap();
        assert_eq!(found, vec![root.join("LOCK"), root.join("chain/sub/a.tmp")]);
        assert_eq!(size_of(root, deadline).unwrap(), 6);
        assert_eq!(size_of(&root.join("chain/keep.ldb"), deadline).unwrap(), 1);
        assert!(find(&root.join("nope"), &|_, _| true, deadline).is_err());
        assert!(is_within(root, &root.join("chain/sub")));
        assert!(!is_within(&root.join("chain"), root));
        assert!(!is_within(root, &root.join("link")));
    }

    #[test]
    fn plain_names() {
        for ok in ["neo-data-20240501T120000Z.tar.gz", "a", "..a"] {
            assert!(plain_file_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "/etc/passwd", "a/b", "a\nb", "a\0b"] {
            assert!(!plain_file_name(bad), "{bad:?}");
        }
    }
}
