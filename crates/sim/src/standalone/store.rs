//! The standalone node's data directory and its database tools.
//!
//! Layout (see `crates/sim/STANDALONE.md`):
//! - `LOCK`: created (holding the pid) when the node opens the directory, removed on a clean
//!   stop. A killed node leaves it behind and the next start refuses, like a LevelDB/RocksDB
//!   node after an unclean stop: that is what the playbook's `quick_recovery` clears.
//! - `chain/blocks.dat`: one fixed-size record per block from genesis on, each carrying its
//!   own checksum, so a flipped byte, a broken link or a torn write is found at start.
//! - `chain/batch-<first index>.tmp`: written before a batch is appended and removed after,
//!   so a kill at the wrong moment leaves a temp file behind, as a real database does.
//!
//! The tools (`db_check`, `db_repair`, `db_optimize`) work on a stopped node only: they refuse
//! while `LOCK` names a live process, and ignore a stale `LOCK` (dead pid).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use super::NodeError;
use crate::chain::Block;

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "LOCK";
/// The chain's directory inside the data directory.
pub const CHAIN_DIR: &str = "chain";
/// The block file's name inside [`CHAIN_DIR`].
pub const BLOCKS_FILE: &str = "blocks.dat";
/// Bytes of one block record: index u64, hash 32, prev 32, time u64, nonce u64, primary u32
/// (all integers little-endian), then the first 8 bytes of the sha256 of those 92 bytes.
pub const RECORD_LEN: usize = 100;
const BODY_LEN: usize = 92;

/// `DATA/chain/blocks.dat`.
pub fn blocks_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CHAIN_DIR).join(BLOCKS_FILE)
}

/// `DATA/LOCK`.
pub fn lock_path(data_dir: &Path) -> PathBuf {
    data_dir.join(LOCK_FILE)
}

fn checksum(body: &[u8]) -> [u8; 8] {
    let d = Sha256::digest(body);
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// The record of `b`.
pub(crate) fn encode(b: &Block) -> [u8; RECORD_LEN] {
    let mut r = [0u8; RECORD_LEN];
    r[0..8].copy_from_slice(&b.index.to_le_bytes());
    r[8..40].copy_from_slice(&b.hash);
    r[40..72].copy_from_slice(&b.prev);
    r[72..80].copy_from_slice(&b.time.to_le_bytes());
    r[80..88].copy_from_slice(&b.nonce.to_le_bytes());
    r[88..92].copy_from_slice(&b.primary.to_le_bytes());
    let sum = checksum(&r[..BODY_LEN]);
    r[BODY_LEN..].copy_from_slice(&sum);
    r
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_le_bytes(a)
}

/// The block of a record, or `None` when its checksum does not match.
fn decode(r: &[u8]) -> Option<Block> {
    if r.len() != RECORD_LEN || checksum(&r[..BODY_LEN]) != r[BODY_LEN..] {
        return None;
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&r[8..40]);
    let mut prev = [0u8; 32];
    prev.copy_from_slice(&r[40..72]);
    let mut primary = [0u8; 4];
    primary.copy_from_slice(&r[88..92]);
    Some(Block {
        index: le_u64(&r[0..8]),
        hash,
        prev,
        time: le_u64(&r[72..80]),
        nonce: le_u64(&r[80..88]),
        // the view is not served (it is not part of a header); standalone blocks keep 0
        view: 0,
        primary: u32::from_le_bytes(primary),
    })
}

/// What is wrong with the first bad record of a block file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Corruption {
    /// The record's bytes do not match its checksum.
    Checksum,
    /// The record is intact but holds another block index than its position.
    Index { found: u64 },
    /// The record's previous hash is not the hash of the record before it.
    Link,
    /// The file ends inside a record (a torn write): `bytes` of [`RECORD_LEN`].
    Torn { bytes: usize },
}

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Corruption::Checksum => f.write_str("checksum mismatch"),
            Corruption::Index { found } => write!(f, "record holds index {found}"),
            Corruption::Link => f.write_str("previous hash does not match the block before it"),
            Corruption::Torn { bytes } => {
                write!(f, "torn record ({bytes} of {RECORD_LEN} bytes)")
            }
        }
    }
}

/// In JSON, the sentence operators read (`"checksum mismatch"`).
impl Serialize for Corruption {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The first bad record: the block index its position stands for, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadBlock {
    pub index: u64,
    pub reason: Corruption,
}

/// The intact blocks at the start of a block file and the first bad record after them.
struct Scan {
    blocks: Vec<Block>,
    bad: Option<BadBlock>,
}

/// Verifies every record: checksum, index = position, previous hash = hash of the record
/// before (genesis has no predecessor to check).
fn scan(bytes: &[u8]) -> Scan {
    let mut blocks: Vec<Block> = Vec::with_capacity(bytes.len() / RECORD_LEN);
    let mut chunks = bytes.chunks_exact(RECORD_LEN);
    for (pos, r) in (0u64..).zip(chunks.by_ref()) {
        let reason = match decode(r) {
            None => Some(Corruption::Checksum),
            Some(b) if b.index != pos => Some(Corruption::Index { found: b.index }),
            Some(b) if blocks.last().is_some_and(|p| p.hash != b.prev) => Some(Corruption::Link),
            Some(b) => {
                blocks.push(b);
                None
            }
        };
        if let Some(reason) = reason {
            return Scan {
                bad: Some(BadBlock { index: pos, reason }),
                blocks,
            };
        }
    }
    let rest = chunks.remainder().len();
    let bad = (rest > 0).then_some(BadBlock {
        index: blocks.len() as u64,
        reason: Corruption::Torn { bytes: rest },
    });
    Scan { blocks, bad }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DbError + '_ {
    move |source| DbError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The bytes of the block file; empty when there is none yet (a node that never synced).
fn read_blocks(file: &Path) -> Result<Vec<u8>, DbError> {
    match fs::read(file) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err(file)(e)),
    }
}

/// Why a database tool did not run or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A node is running on the directory.
    #[error("{} is held by running process {pid}: stop the node first", .lock.display())]
    InUse { lock: PathBuf, pid: u32 },
    /// `LOCK` exists but names no process: whether a node runs cannot be told.
    #[error("{} exists but does not hold a process id: stop the node, or delete it if no node runs on {}", .lock.display(), .dir.display())]
    UnknownLock { lock: PathBuf, dir: PathBuf },
    /// The data directory does not exist.
    #[error("no data directory at {}", .0.display())]
    NoDataDir(PathBuf),
    /// `optimize` found corruption: it keeps a chain, it does not cut one.
    #[error("{} is corrupt at block {}: {}; run repair or restore a backup first", .file.display(), .bad.index, .bad.reason)]
    Corrupt { file: PathBuf, bad: BadBlock },
    #[error("IO error: {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What `db_check` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DbReport {
    /// No bad record.
    pub ok: bool,
    /// Intact blocks from genesis up to the first bad record (all of them when `ok`).
    pub blocks: u64,
    pub first_bad: Option<BadBlock>,
    /// The block file checked.
    pub file: PathBuf,
    /// Leftover `*.tmp` files in the chain directory (a node killed mid-write).
    pub temp_files: u64,
}

/// What `db_repair` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    /// Records removed: the first bad one and everything after it (a torn tail counts as one).
    pub dropped: u64,
    /// Blocks kept.
    pub blocks: u64,
    /// Height after the repair (`None`: no block left, the node re-syncs from genesis).
    pub height: Option<u64>,
    pub file: PathBuf,
}

/// What `db_optimize` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OptimizeReport {
    pub blocks: u64,
    /// Bytes of the chain directory's files (block file and temp files) before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Leftover `*.tmp` files removed.
    pub temp_files_removed: u64,
    pub file: PathBuf,
}

/// Whether process `pid` exists (Linux: `/proc/<pid>`).
fn pid_alive(pid: u32) -> bool {
    pid != 0 && Path::new("/proc").join(pid.to_string()).exists()
}

/// Refuses when the directory is missing or a live process holds its `LOCK`.
fn ensure_stopped(data_dir: &Path) -> Result<(), DbError> {
    if !data_dir.is_dir() {
        return Err(DbError::NoDataDir(data_dir.to_path_buf()));
    }
    let lock = lock_path(data_dir);
    let mut text = Vec::new();
    match File::open(&lock) {
        // a pid is a few digits: a larger LOCK holds no pid, however large it is
        Ok(f) => f
            .take(64)
            .read_to_end(&mut text)
            .map(drop)
            .map_err(io_err(&lock))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(&lock)(e)),
    }
    let pid = std::str::from_utf8(&text)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|p| *p != 0);
    match pid {
        Some(pid) if pid_alive(pid) => Err(DbError::InUse { lock, pid }),
        Some(_) => Ok(()),
        None => Err(DbError::UnknownLock {
            lock,
            dir: data_dir.to_path_buf(),
        }),
    }
}

/// The leftover `*.tmp` files of the chain directory, with their sizes.
fn temp_files(chain_dir: &Path) -> Result<Vec<(PathBuf, u64)>, DbError> {
    let entries = match fs::read_dir(chain_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(chain_dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(chain_dir))?;
        let path = entry.path();
        let meta = entry.metadata().map_err(io_err(&path))?;
        if meta.is_file() && path.extension().is_some_and(|e| e == "tmp") {
            out.push((path, meta.len()));
        }
    }
    out.sort();
    Ok(out)
}

/// Verifies every record of a stopped node's block file.
pub fn db_check(data_dir: &Path) -> Result<DbReport, DbError> {
    ensure_stopped(data_dir)?;
    let file = blocks_path(data_dir);
    let scan = scan(&read_blocks(&file)?);
    Ok(DbReport {
        ok: scan.bad.is_none(),
        blocks: scan.blocks.len() as u64,
        first_bad: scan.bad,
        temp_files: temp_files(&data_dir.join(CHAIN_DIR))?.len() as u64,
        file,
    })
}

/// Writes `records` to `file` through `file.tmp` and a rename, so a crash leaves either the
/// old file or the new one.
fn replace_file(file: &Path, blocks: &[Block]) -> Result<u64, DbError> {
    let mut tmp_name = file.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut out = File::create(&tmp).map_err(io_err(&tmp))?;
    let mut bytes = Vec::with_capacity(blocks.len() * RECORD_LEN);
    for b in blocks {
        bytes.extend_from_slice(&encode(b));
    }
    out.write_all(&bytes).map_err(io_err(&tmp))?;
    out.sync_all().map_err(io_err(&tmp))?;
    drop(out);
    fs::rename(&tmp, file).map_err(io_err(file))?;
    Ok(bytes.len() as u64)
}

/// Truncates a stopped node's block file at its first bad record (nothing to do when it is
/// healthy). The node then re-syncs the dropped blocks from its upstream.
pub fn db_repair(data_dir: &Path) -> Result<RepairReport, DbError> {
    ensure_stopped(data_dir)?;
    let file = blocks_path(data_dir);
    let bytes = read_blocks(&file)?;
    let scan = scan(&bytes);
    let kept = scan.blocks.len() as u64;
    let dropped = match &scan.bad {
        None => 0,
        Some(_) => {
            let rest = bytes.len() as u64 - kept * RECORD_LEN as u64;
            replace_file(&file, &scan.blocks)?;
            rest.div_ceil(RECORD_LEN as u64)
        }
    };
    Ok(RepairReport {
        dropped,
        blocks: kept,
        height: kept.checked_sub(1),
        file,
    })
}

/// Rewrites a stopped node's block file compactly and removes leftover temp files. Refuses
/// a corrupt file (repair it first): optimizing never drops a block.
pub fn db_optimize(data_dir: &Path) -> Result<OptimizeReport, DbError> {
    ensure_stopped(data_dir)?;
    let file = blocks_path(data_dir);
    let chain_dir = data_dir.join(CHAIN_DIR);
    let bytes = read_blocks(&file)?;
    let scan = scan(&bytes);
    if let Some(bad) = scan.bad {
        return Err(DbError::Corrupt { file, bad });
    }
    let temps = temp_files(&chain_dir)?;
    let bytes_before = bytes.len() as u64 + temps.iter().map(|(_, n)| n).sum::<u64>();
    let bytes_after = if file.exists() {
        replace_file(&file, &scan.blocks)?
    } else {
        0
    };
    // listed before the rewrite: its own temp file is renamed away, not counted
    for (path, _) in &temps {
        fs::remove_file(path).map_err(io_err(path))?;
    }
    Ok(OptimizeReport {
        blocks: scan.blocks.len() as u64,
        bytes_before,
        bytes_after,
        temp_files_removed: temps.len() as u64,
        file,
    })
}

/// The node's hold on its data directory: removes `LOCK` when dropped (a clean stop or a
/// failed start). A killed process drops nothing, so `LOCK` stays behind.
#[derive(Debug)]
pub(crate) struct LockGuard {
    path: PathBuf,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// An open data directory: its lock, its blocks (verified) and the block file for appends.
pub(crate) struct Opened {
    pub lock: LockGuard,
    pub blocks: Vec<Block>,
    pub appender: Appender,
    /// Leftover temp files found (a previous run was killed mid-write).
    pub temp_files: Vec<PathBuf>,
}

/// Takes `DATA/LOCK` (refusing when it exists), then loads and verifies the block file.
pub(crate) fn open(data_dir: &Path) -> Result<Opened, NodeError> {
    let chain_dir = data_dir.join(CHAIN_DIR);
    fs::create_dir_all(&chain_dir).map_err(io_err(&chain_dir))?;
    let path = lock_path(data_dir);
    let mut f = match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(NodeError::Locked { path });
        }
        Err(e) => return Err(io_err(&path)(e).into()),
    };
    let lock = LockGuard { path: path.clone() };
    f.write_all(format!("{}\n", std::process::id()).as_bytes())
        .map_err(io_err(&path))?;
    let file = blocks_path(data_dir);
    let scan = scan(&read_blocks(&file)?);
    if let Some(bad) = scan.bad {
        return Err(NodeError::Corrupt { file, bad });
    }
    let temp_files = temp_files(&chain_dir)?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
        .map_err(io_err(&file))?;
    Ok(Opened {
        lock,
        blocks: scan.blocks,
        appender: Appender {
            file: out,
            path: file,
            chain_dir,
        },
        temp_files,
    })
}

/// Appends blocks to the block file the way a database writes a batch: the batch goes to
/// `chain/batch-<first index>.tmp` first, then to the block file, then the temp file is
/// removed. No fsync: a simulated node trades durability for speed (a kill after the write
/// keeps the data in the page cache; only a machine crash could tear it).
pub(crate) struct Appender {
    file: File,
    path: PathBuf,
    chain_dir: PathBuf,
}

impl Appender {
    /// The block file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `blocks` (already checked to extend the chain) at the end of the block file.
    pub fn append(&mut self, blocks: &[Block]) -> Result<(), DbError> {
        let Some(first) = blocks.first() else {
            return Ok(());
        };
        let mut bytes = Vec::with_capacity(blocks.len() * RECORD_LEN);
        for b in blocks {
            bytes.extend_from_slice(&encode(b));
        }
        let tmp = self.chain_dir.join(format!("batch-{}.tmp", first.index));
        fs::write(&tmp, &bytes).map_err(io_err(&tmp))?;
        self.file.write_all(&bytes).map_err(io_err(&self.path))?;
        fs::remove_file(&tmp).map_err(io_err(&tmp))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<Block> {
        let mut out: Vec<Block> = Vec::new();
        for i in 0..n {
            let prev = out.last().map_or([0u8; 32], |b| b.hash);
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&(i + 1).to_le_bytes());
            out.push(Block {
                index: i,
                hash,
                prev,
                time: 1_700_000_000_000 + i,
                nonce: i * 7,
                view: 0,
                primary: (i % 4) as u32,
            });
        }
        out
    }

    fn bytes(blocks: &[Block]) -> Vec<u8> {
        blocks.iter().flat_map(encode).collect()
    }

    #[test]
    fn records_round_trip() {
        for b in chain(3) {
            assert_eq!(decode(&encode(&b)), Some(b));
        }
    }

    #[test]
    fn scan_finds_each_kind_of_damage() {
        let good = chain(5);
        let s = scan(&bytes(&good));
        assert_eq!((s.blocks.len(), s.bad), (5, None));

        let mut flipped = bytes(&good);
        flipped[2 * RECORD_LEN + 50] ^= 1;
        let mut torn = bytes(&good);
        torn.truncate(4 * RECORD_LEN + 37);
        let mut skipped = good.clone();
        skipped.remove(1);
        let mut unlinked = good.clone();
        unlinked[3].prev = [9u8; 32];
        let cases = [
            (flipped, 2, Corruption::Checksum),
            (torn, 4, Corruption::Torn { bytes: 37 }),
            (bytes(&skipped), 1, Corruption::Index { found: 2 }),
            (bytes(&unlinked), 3, Corruption::Link),
        ];
        for (damaged, index, reason) in cases {
            let s = scan(&damaged);
            assert_eq!(s.blocks.len() as u64, index, "{reason}");
            assert_eq!(s.bad, Some(BadBlock { index, reason }));
        }
        assert_eq!(
            serde_json::to_string(&Corruption::Checksum).expect("json"),
            "\"checksum mismatch\""
        );
    }
}
