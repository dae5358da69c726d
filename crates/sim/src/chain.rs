//! The canonical chain: block records, deterministic hashing, header encoding and the
//! background task that produces blocks the way dBFT does.
//!
//! dBFT model: for block `index` the round starts at view 0 and the primary (speaker) is
//! `(index - view) mod validators`. If that validator is down (crashed, hung or frozen) the
//! backups wait for the change-view timer, `msperblock << (view + 1)` (divided by
//! [`CHANGE_VIEW_TIMER_DIVISOR`] to keep tests short, the doubling shape is kept), and move to
//! `view + 1`. With more than `f = (n - 1) / 3` validators down no quorum of `n - f`
//! signatures exists, so nothing is produced until enough of them come back. Blocks follow
//! each other every `msperblock`; a chain-wide stall stops production altogether.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::network::Shared;

/// The change-view timer of the real protocol, `msperblock << (view + 1)`, is divided by this
/// constant in the simulator (so a crashed primary costs one `msperblock`, not two, at view 0).
pub const CHANGE_VIEW_TIMER_DIVISOR: u64 = 2;
/// The timer stops doubling after this many views (keeps the shift in range).
const MAX_VIEW_SHIFT: u32 = 16;

/// `nextconsensus` of every block: a fixed Neo address (the simulator has no real keys).
pub(crate) const NEXT_CONSENSUS: &str = "NZHf1NJvz1tvELGLWZjhpb3NqZJFFUYpxT";
/// Nonce of the genesis block (the one real Neo networks use).
const GENESIS_NONCE: u64 = 0x7C2B_AC1D;

/// One block header as the simulator keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    pub index: u64,
    pub hash: [u8; 32],
    pub prev: [u8; 32],
    /// Milliseconds since the Unix epoch.
    pub time: u64,
    pub nonce: u64,
    /// The dBFT view in which the block was agreed (0 when the first primary was up).
    pub view: u32,
    /// Index of the validator that proposed the block.
    pub primary: u32,
}

/// Deterministic block hash: sha256 over the network magic, seed, index, previous hash, view
/// and fork salt (0 on the canonical chain).
pub(crate) fn block_hash(
    network: u32,
    seed: u64,
    index: u64,
    prev: &[u8; 32],
    view: u32,
    salt: u64,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"neo-ir-sim/block");
    h.update(network.to_le_bytes());
    h.update(seed.to_le_bytes());
    h.update(index.to_le_bytes());
    h.update(prev);
    h.update(view.to_le_bytes());
    h.update(salt.to_le_bytes());
    h.finalize().into()
}

/// The state root of a block: derived from its hash, so a forked block has another root.
pub(crate) fn state_root(block_hash: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"neo-ir-sim/stateroot");
    h.update(block_hash);
    h.finalize().into()
}

/// The primary (speaker) of `index` in `view`: `(index - view) mod validators`.
pub fn primary_index(index: u64, view: u32, validators: u32) -> u32 {
    let n = i128::from(validators.max(1));
    (i128::from(index) - i128::from(view)).rem_euclid(n) as u32
}

/// How many validators may be down with the chain still advancing: `(n - 1) / 3`.
pub fn max_faulty(validators: u32) -> u32 {
    validators.saturating_sub(1) / 3
}

/// The (scaled) change-view timer for leaving `view`.
pub fn change_view_timeout(msperblock: u64, view: u32) -> Duration {
    let shift = view.saturating_add(1).min(MAX_VIEW_SHIFT);
    Duration::from_millis(msperblock.saturating_mul(1 << shift) / CHANGE_VIEW_TIMER_DIVISOR)
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The canonical chain, all blocks in memory.
#[derive(Debug)]
pub(crate) struct Chain {
    network: u32,
    seed: u64,
    blocks: Vec<Block>,
    by_hash: HashMap<[u8; 32], u64>,
}

impl Chain {
    /// A chain holding only its genesis block, stamped with `time` (ms).
    pub fn new(network: u32, seed: u64, time: u64) -> Chain {
        let prev = [0u8; 32];
        let genesis = Block {
            index: 0,
            hash: block_hash(network, seed, 0, &prev, 0, 0),
            prev,
            time,
            nonce: GENESIS_NONCE,
            view: 0,
            primary: 0,
        };
        let mut by_hash = HashMap::new();
        by_hash.insert(genesis.hash, 0);
        Chain {
            network,
            seed,
            blocks: vec![genesis],
            by_hash,
        }
    }

    /// A chain starting at `genesis` (a standalone node's, loaded from disk or fetched from
    /// its upstream: it does not know the network's seed and never produces blocks).
    pub fn with_genesis(network: u32, genesis: Block) -> Chain {
        Chain {
            network,
            seed: 0,
            by_hash: HashMap::from([(genesis.hash, genesis.index)]),
            blocks: vec![genesis],
        }
    }

    /// Appends a block made elsewhere if it extends the tip (next index, previous hash = the
    /// tip's hash); false, and nothing changes, otherwise.
    pub fn append(&mut self, block: Block) -> bool {
        let tip = self.blocks.last().expect("genesis exists");
        if block.index != tip.index + 1 || block.prev != tip.hash {
            return false;
        }
        self.by_hash.insert(block.hash, block.index);
        self.blocks.push(block);
        true
    }

    pub fn network(&self) -> u32 {
        self.network
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn height(&self) -> u64 {
        self.blocks.len() as u64 - 1
    }

    pub fn get(&self, index: u64) -> Option<&Block> {
        usize::try_from(index).ok().and_then(|i| self.blocks.get(i))
    }

    pub fn index_of(&self, hash: &[u8; 32]) -> Option<u64> {
        self.by_hash.get(hash).copied()
    }

    /// Appends the next block, agreed in `view` with `primary` as speaker.
    pub fn push(&mut self, view: u32, primary: u32, time: u64) -> &Block {
        let last = *self.blocks.last().expect("genesis exists");
        let index = last.index + 1;
        let hash = block_hash(self.network, self.seed, index, &last.hash, view, 0);
        let nonce = u64::from_le_bytes(hash[..8].try_into().expect("8 bytes"));
        let block = Block {
            index,
            hash,
            prev: last.hash,
            time: time.max(last.time),
            nonce,
            view,
            primary,
        };
        self.by_hash.insert(hash, index);
        self.blocks.push(block);
        self.blocks.last().expect("just pushed")
    }
}

/// Keys of the simulated validators: deterministic compressed "public keys" (33 bytes).
pub(crate) fn validator_keys(seed: u64, validators: u32) -> Vec<[u8; 33]> {
    (0..validators)
        .map(|i| {
            let mut h = Sha256::new();
            h.update(b"neo-ir-sim/validator-key");
            h.update(seed.to_le_bytes());
            h.update(i.to_le_bytes());
            let d: [u8; 32] = h.finalize().into();
            let mut k = [0u8; 33];
            k[0] = 0x02 | (d[31] & 1);
            k[1..].copy_from_slice(&d);
            k
        })
        .collect()
}

/// A block witness: invocation (signatures) and verification (multisig script) bytes.
pub(crate) struct Witness {
    pub invocation: Vec<u8>,
    pub verification: Vec<u8>,
}

fn push_int(out: &mut Vec<u8>, n: u32) {
    if n <= 16 {
        out.push(0x10 + n as u8);
    } else if n <= 127 {
        out.extend_from_slice(&[0x00, n as u8]);
    } else {
        out.push(0x01);
        out.extend_from_slice(&(n as u16).to_le_bytes());
    }
}

/// The witness of a block: genesis carries `PUSH1` (like real genesis blocks); every other
/// block carries `n - f` fake signatures and an `n - f` of `n` multisig verification script.
pub(crate) fn witness(block: &Block, keys: &[[u8; 33]]) -> Witness {
    if block.index == 0 {
        return Witness {
            invocation: Vec::new(),
            verification: vec![0x11],
        };
    }
    let n = keys.len() as u32;
    let m = n - max_faulty(n);
    let mut invocation = Vec::with_capacity(m as usize * 66);
    for k in 0..m {
        invocation.extend_from_slice(&[0x0c, 0x40]);
        for half in 0u8..2 {
            let mut h = Sha256::new();
            h.update(block.hash);
            h.update(k.to_le_bytes());
            h.update([half]);
            invocation.extend_from_slice(&h.finalize());
        }
    }
    let mut verification = Vec::with_capacity(keys.len() * 35 + 10);
    push_int(&mut verification, m);
    for key in keys {
        verification.extend_from_slice(&[0x0c, 0x21]);
        verification.extend_from_slice(key);
    }
    push_int(&mut verification, n);
    // SYSCALL System.Crypto.CheckMultisig
    verification.extend_from_slice(&[0x41, 0x9e, 0xd0, 0xdc, 0x3a]);
    Witness {
        invocation,
        verification,
    }
}

fn var_int(out: &mut Vec<u8>, n: usize) {
    if n < 0xfd {
        out.push(n as u8);
    } else if n <= 0xffff {
        out.push(0xfd);
        out.extend_from_slice(&(n as u16).to_le_bytes());
    } else {
        out.push(0xfe);
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
}

/// The binary header (Neo N3 layout: version, prev, merkle root, time, nonce, index, primary,
/// next consensus, one witness). Its length is the `size` of `getblockheader`.
pub(crate) fn encode_header(block: &Block, witness: &Witness) -> Vec<u8> {
    let mut out = Vec::with_capacity(120 + witness.invocation.len() + witness.verification.len());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend(block.prev.iter().rev());
    out.extend_from_slice(&[0u8; 32]);
    out.extend_from_slice(&block.time.to_le_bytes());
    out.extend_from_slice(&block.nonce.to_le_bytes());
    out.extend_from_slice(&(block.index as u32).to_le_bytes());
    out.push(block.primary as u8);
    let mut h = Sha256::new();
    h.update(NEXT_CONSENSUS.as_bytes());
    out.extend_from_slice(&h.finalize()[..20]);
    var_int(&mut out, 1);
    var_int(&mut out, witness.invocation.len());
    out.extend_from_slice(&witness.invocation);
    var_int(&mut out, witness.verification.len());
    out.extend_from_slice(&witness.verification);
    out
}

/// What the producer decided for the current round.
enum Round {
    /// Stalled, or too many validators down: wait for a change.
    Wait,
    /// The primary of this view is down: run the change-view timer.
    ChangeView,
    /// Block produced.
    Produced,
}

/// The block producer: runs until aborted.
pub(crate) async fn run_producer(shared: Arc<Shared>) {
    let ms = shared.cfg.msperblock.max(1);
    let mut last = Instant::now();
    loop {
        tokio::time::sleep_until(last + Duration::from_millis(ms)).await;
        let mut view: u32 = 0;
        loop {
            let changed = shared.changed.notified();
            let round = {
                let mut st = shared.state.lock().expect("state lock");
                let n = shared.cfg.validators;
                let down: Vec<bool> = (0..n as usize).map(|i| st.nodes[i].is_down()).collect();
                let down_count = down.iter().filter(|d| **d).count() as u32;
                if st.stalled || down_count > max_faulty(n) {
                    Round::Wait
                } else {
                    let index = st.chain.height() + 1;
                    let primary = primary_index(index, view, n);
                    if down[primary as usize] {
                        Round::ChangeView
                    } else {
                        let b = *st.chain.push(view, primary, now_ms());
                        tracing::debug!(index = b.index, view, primary, "sim block produced");
                        Round::Produced
                    }
                }
            };
            match round {
                Round::Wait => changed.await,
                Round::ChangeView => {
                    tokio::time::sleep(change_view_timeout(ms, view)).await;
                    view = view.saturating_add(1);
                }
                Round::Produced => break,
            }
        }
        shared.changed.notify_waiters();
        last = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_rotates_and_views_step_back() {
        assert_eq!(primary_index(0, 0, 4), 0);
        assert_eq!(primary_index(5, 0, 4), 1);
        assert_eq!(primary_index(5, 1, 4), 0);
        assert_eq!(primary_index(0, 1, 4), 3);
        assert_eq!(primary_index(1, 3, 4), 2);
    }

    #[test]
    fn fault_tolerance() {
        assert_eq!(max_faulty(1), 0);
        assert_eq!(max_faulty(4), 1);
        assert_eq!(max_faulty(7), 2);
        assert_eq!(max_faulty(21), 6);
    }

    #[test]
    fn timer_doubles() {
        let t0 = change_view_timeout(1000, 0);
        let t1 = change_view_timeout(1000, 1);
        assert_eq!(t1, t0 * 2);
        assert_eq!(t0, Duration::from_millis(2000 / CHANGE_VIEW_TIMER_DIVISOR));
        let _ = change_view_timeout(u64::MAX, u32::MAX);
    }

    #[test]
    fn genesis_header_is_113_bytes() {
        let chain = Chain::new(5195086, 0, 1);
        let g = *chain.get(0).expect("genesis");
        let w = witness(&g, &validator_keys(0, 4));
        assert_eq!(encode_header(&g, &w).len(), 113);
    }

    #[test]
    fn chain_links() {
        let mut chain = Chain::new(1, 2, 3);
        let b1 = *chain.push(0, 1, 4);
        assert_eq!(b1.prev, chain.get(0).expect("genesis").hash);
        assert_eq!(chain.index_of(&b1.hash), Some(1));
        assert_eq!(chain.height(), 1);
    }
}
