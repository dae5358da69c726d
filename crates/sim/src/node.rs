//! Per-node state: the faults a node carries and the node's own view of the chain (how far it
//! follows the canonical chain, and its private branch after a `fork`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::chain::{block_hash, Block, Chain};

/// A fault that can be injected into one node.
///
/// Serialized internally tagged by `"fault"`, snake_case: `{"fault":"crash"}`,
/// `{"fault":"slow","ms":500}`, `{"fault":"peers","count":0}`, `{"fault":"fork","height":120}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// The RPC listener is closed (connections refused); a validator stops voting.
    Crash,
    /// Requests are accepted and never answered (until recovered).
    Hang,
    /// Every answer is delayed by `ms` milliseconds.
    Slow { ms: u64 },
    /// The node keeps answering but its height stops; a validator stops voting.
    Freeze,
    /// `getconnectioncount` answers `count` (and `getpeers` lists as many).
    Peers { count: u32 },
    /// From `height` on the node follows its own branch (other hashes, same pace). Nodes
    /// forked with the same `branch` number at the same height share one branch (a
    /// partition); without it every forked node is alone.
    Fork {
        height: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: Option<u32>,
    },
    /// HTTP 200 with a body that is not JSON.
    Garbage,
    /// HTTP 200 with a 50 MiB body.
    Huge,
    /// `getblockcount` claims 1,000,000 blocks more than the node has.
    Lie,
    /// From `height` on the node's state diverges while its blocks stay canonical (the
    /// neo-go/C# state differences of the field notes): `getstateroot` answers other root
    /// hashes and `getstateheight`'s `validatedrootindex` stops below `height` while
    /// `localrootindex` keeps climbing.
    StateRoot { height: u64 },
}

/// The private branch of a forked node.
#[derive(Debug, Clone)]
pub(crate) struct ForkState {
    pub height: u64,
    pub branch: Option<u32>,
    pub salt: u64,
    /// Hashes of the branch blocks `height, height + 1, ...` computed so far.
    pub hashes: Vec<[u8; 32]>,
}

/// The set of faults a node currently has (they combine).
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeFaults {
    pub crashed: bool,
    pub hang: bool,
    pub slow_ms: Option<u64>,
    pub frozen: bool,
    pub peers: Option<u32>,
    pub fork: Option<ForkState>,
    pub garbage: bool,
    pub huge: bool,
    pub lie: bool,
    pub bad_state_from: Option<u64>,
}

/// Mutable state of one node.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeState {
    pub faults: NodeFaults,
    /// Set when the node stopped following the chain (crash or freeze): its height then.
    pub stuck_at: Option<u64>,
}

impl NodeState {
    /// A validator in this state does not take part in consensus.
    pub fn is_down(&self) -> bool {
        self.faults.crashed || self.faults.hang || self.faults.frozen
    }

    /// The height this node reports.
    pub fn height(&self, chain: &Chain) -> u64 {
        let h = chain.height();
        self.stuck_at.map_or(h, |s| s.min(h))
    }

    /// Applies a fault. `salt` is used by `Fork` only.
    pub fn apply(&mut self, fault: &Fault, chain: &Chain, salt: u64) {
        let f = &mut self.faults;
        match *fault {
            Fault::Crash => f.crashed = true,
            Fault::Hang => f.hang = true,
            Fault::Slow { ms } => f.slow_ms = Some(ms),
            Fault::Freeze => f.frozen = true,
            Fault::Peers { count } => f.peers = Some(count),
            Fault::Fork { height, branch } => {
                f.fork = Some(ForkState {
                    height,
                    branch,
                    salt: salt.max(1),
                    hashes: Vec::new(),
                })
            }
            Fault::Garbage => f.garbage = true,
            Fault::Huge => f.huge = true,
            Fault::Lie => f.lie = true,
            Fault::StateRoot { height } => f.bad_state_from = Some(height),
        }
        if matches!(fault, Fault::Crash | Fault::Freeze) && self.stuck_at.is_none() {
            self.stuck_at = Some(chain.height());
        }
    }

    /// Clears every fault; the node catches up at once.
    pub fn recover(&mut self) {
        *self = NodeState::default();
    }

    /// The current faults as API values, in a fixed order.
    pub fn fault_list(&self) -> Vec<Fault> {
        let f = &self.faults;
        let mut out = Vec::new();
        if f.crashed {
            out.push(Fault::Crash);
        }
        if f.hang {
            out.push(Fault::Hang);
        }
        if let Some(ms) = f.slow_ms {
            out.push(Fault::Slow { ms });
        }
        if f.frozen {
            out.push(Fault::Freeze);
        }
        if let Some(count) = f.peers {
            out.push(Fault::Peers { count });
        }
        if let Some(fork) = &f.fork {
            out.push(Fault::Fork {
                height: fork.height,
                branch: fork.branch,
            });
        }
        if f.garbage {
            out.push(Fault::Garbage);
        }
        if f.huge {
            out.push(Fault::Huge);
        }
        if f.lie {
            out.push(Fault::Lie);
        }
        if let Some(height) = f.bad_state_from {
            out.push(Fault::StateRoot { height });
        }
        out
    }

    /// Block `index` as this node sees it (`None` above its height).
    pub fn block(&mut self, chain: &Chain, index: u64) -> Option<Block> {
        if index > self.height(chain) {
            return None;
        }
        let mut b = *chain.get(index)?;
        if let Some(fork) = self.faults.fork.as_mut() {
            if index >= fork.height {
                b.hash = fork_hash(fork, chain, index)?;
                b.prev = if index == fork.height {
                    b.prev
                } else {
                    fork_hash(fork, chain, index - 1)?
                };
                b.nonce = u64::from_le_bytes(b.hash[..8].try_into().expect("8 bytes"));
            }
        }
        Some(b)
    }

    /// The index of the block with this hash in this node's view.
    pub fn find(&mut self, chain: &Chain, hash: &[u8; 32]) -> Option<u64> {
        let height = self.height(chain);
        let fork_from = self.faults.fork.as_ref().map(|f| f.height);
        if let Some(i) = chain.index_of(hash) {
            if i <= height && fork_from.is_none_or(|from| i < from) {
                return Some(i);
            }
        }
        let from = fork_from?;
        (from..=height).find(|&i| self.block(chain, i).is_some_and(|b| &b.hash == hash))
    }
}

/// Hash of branch block `index` (>= fork height), extending the cache as needed.
fn fork_hash(fork: &mut ForkState, chain: &Chain, index: u64) -> Option<[u8; 32]> {
    let offset = usize::try_from(index.checked_sub(fork.height)?).ok()?;
    while fork.hashes.len() <= offset {
        let i = fork.height + fork.hashes.len() as u64;
        let canon = chain.get(i)?;
        let prev = match fork.hashes.last() {
            Some(h) => *h,
            None => canon.prev,
        };
        let h = block_hash(
            chain.network(),
            chain.seed(),
            i,
            &prev,
            canon.view,
            fork.salt,
        );
        fork.hashes.push(h);
    }
    Some(fork.hashes[offset])
}

/// A fork salt that differs per node, height and injection.
pub(crate) fn fork_salt(seed: u64, node: usize, height: u64, counter: u64) -> u64 {
    let mut h = Sha256::new();
    h.update(b"neo-ir-sim/fork");
    h.update(seed.to_le_bytes());
    h.update((node as u64).to_le_bytes());
    h.update(height.to_le_bytes());
    h.update(counter.to_le_bytes());
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes")) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Chain {
        let mut c = Chain::new(7, 7, 1);
        for i in 0..n {
            c.push(0, (i % 4) as u32, 2 + i);
        }
        c
    }

    #[test]
    fn fork_diverges_at_height() {
        let c = chain(10);
        let mut node = NodeState::default();
        node.apply(
            &Fault::Fork {
                height: 5,
                branch: None,
            },
            &c,
            99,
        );
        for i in 0..5 {
            assert_eq!(node.block(&c, i).map(|b| b.hash), c.get(i).map(|b| b.hash));
        }
        for i in 5..=10 {
            assert_ne!(node.block(&c, i).map(|b| b.hash), c.get(i).map(|b| b.hash));
        }
        let b6 = node.block(&c, 6).expect("b6");
        assert_eq!(b6.prev, node.block(&c, 5).expect("b5").hash);
        assert_eq!(node.find(&c, &b6.hash), Some(6));
        let canon6 = c.get(6).expect("c6").hash;
        assert_eq!(node.find(&c, &canon6), None);
        assert_eq!(node.find(&c, &c.get(2).expect("c2").hash), Some(2));
    }

    #[test]
    fn freeze_and_recover() {
        let mut c = chain(3);
        let mut node = NodeState::default();
        node.apply(&Fault::Freeze, &c, 0);
        c.push(0, 0, 100);
        assert_eq!(node.height(&c), 3);
        assert!(node.block(&c, 4).is_none());
        assert!(node.is_down());
        node.recover();
        assert_eq!(node.height(&c), 4);
        assert!(node.fault_list().is_empty());
    }

    #[test]
    fn fault_serde() {
        let f: Fault = serde_json::from_str(r#"{"fault":"slow","ms":500}"#).expect("slow");
        assert_eq!(f, Fault::Slow { ms: 500 });
        assert_eq!(
            serde_json::to_string(&Fault::Peers { count: 0 }).expect("json"),
            r#"{"fault":"peers","count":0}"#
        );
        assert!(serde_json::from_str::<Fault>(r#"{"fault":"melt"}"#).is_err());
    }
}
