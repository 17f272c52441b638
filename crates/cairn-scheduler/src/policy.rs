//! Pluggable prover selection.
//!
//! The scheduler decides *when* a task needs copies and *which nodes may* take it (free slot, fits the task, not
//! excluded); a [`SelectionPolicy`] decides *who* among those [`Candidates`]. The scheduler re-checks every pick,
//! so a policy cannot assign work to a node that does not fit. All randomness comes from seeded ChaCha generators
//! or from the VRF, so a run is reproducible from its seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schnorrkel::vrf::{VRFPreOut, VRFProof};
use schnorrkel::{signing_context, ExpansionMode, Keypair, MiniSecretKey, PublicKey};

use crate::ledger::Ledger;
use crate::pool::Candidates;
use crate::types::{NodeId, TaskId, TaskKind, Time};

/// Everything a policy knows about the task it places.
#[derive(Debug, Clone)]
pub struct SelectionRequest<'a> {
    pub task: TaskId,
    pub kind: TaskKind,
    pub now: Time,
    /// Copies the scheduler wants now (redundancy not yet covered, or 1 for a backup).
    pub wanted: u32,
    /// Extra copies the policy may add on top of `wanted` (for an emergency race); 0 when none are allowed.
    pub max_extra: u32,
    /// Failed attempts of this task so far (failed, timed out, rejected, abandoned).
    pub failures: u32,
    /// Copies made of this task so far.
    pub assigned_before: u32,
    /// When the task last started waiting for a node (the auction's clock).
    pub waiting_since: Time,
    /// Nodes the tree suggests: for a join, the provers of its two children; for a retried leaf, the prover of its
    /// sibling in the join tree. Possibly not candidates.
    pub hints: &'a [NodeId],
    /// The job's base reward per task.
    pub reward: u64,
    /// This is a speculative backup copy.
    pub backup: bool,
}

/// One chosen node, with the price agreed (if the policy sets prices; otherwise the job's reward is paid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub node: NodeId,
    pub price: Option<u64>,
}

impl Pick {
    pub fn at_reward(node: NodeId) -> Self {
        Self { node, price: None }
    }
}

/// A policy's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Chosen nodes, best first. Picks that are not candidates, duplicates and picks beyond
    /// `wanted + max_extra` are dropped by the scheduler.
    pub picks: Vec<Pick>,
    /// Nobody now, but ask again at this time (an auction waiting for its price to rise).
    pub retry_at: Option<Time>,
}

impl Selection {
    pub fn nodes(nodes: impl IntoIterator<Item = NodeId>) -> Self {
        Self {
            picks: nodes.into_iter().map(Pick::at_reward).collect(),
            retry_at: None,
        }
    }
}

/// Chooses provers among candidates.
pub trait SelectionPolicy: Send {
    fn name(&self) -> &'static str;
    /// Choose nodes for `req.task` among `pool`.
    fn select(
        &mut self,
        req: &SelectionRequest<'_>,
        pool: &Candidates<'_>,
        ledger: &Ledger,
    ) -> Selection;
}

/// The names [`policy_by_name`] knows.
pub const POLICY_NAMES: [&str; 5] = ["fifo", "vrf", "reputation", "stake", "auction"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown selection policy {0:?}; expected one of fifo, vrf, reputation, stake, auction")]
pub struct UnknownPolicy(pub String);

/// A policy with its default parameters, seeded.
pub fn policy_by_name(name: &str, seed: u64) -> Result<Box<dyn SelectionPolicy>, UnknownPolicy> {
    Ok(match name {
        "fifo" => Box::new(FifoPolicy),
        "vrf" => Box::new(VrfPolicy::from_seed(seed)),
        "reputation" => Box::new(ReputationPolicy::new(seed)),
        "stake" => Box::new(StakePolicy::new(seed)),
        "auction" => Box::new(AuctionPolicy::new(seed)),
        other => return Err(UnknownPolicy(other.to_string())),
    })
}

fn take_hints(req: &SelectionRequest<'_>, pool: &Candidates<'_>, out: &mut Vec<NodeId>) {
    for &h in req.hints {
        if out.len() as u32 >= req.wanted {
            break;
        }
        if pool.contains(h) && !out.contains(&h) {
            out.push(h);
        }
    }
}

fn fill_fifo(req: &SelectionRequest<'_>, pool: &Candidates<'_>, out: &mut Vec<NodeId>) {
    if out.len() as u32 >= req.wanted {
        return;
    }
    for n in pool.fifo() {
        if !out.contains(&n) {
            out.push(n);
            if out.len() as u32 >= req.wanted {
                break;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------

/// FIFO / pull: the node that has waited longest for work gets the next task (Bento, Aztec agents, the seed).
#[derive(Debug, Clone, Copy, Default)]
pub struct FifoPolicy;

impl SelectionPolicy for FifoPolicy {
    fn name(&self) -> &'static str {
        "fifo"
    }

    fn select(
        &mut self,
        req: &SelectionRequest<'_>,
        pool: &Candidates<'_>,
        _ledger: &Ledger,
    ) -> Selection {
        Selection::nodes(pool.fifo().take(req.wanted as usize))
    }
}

// ---------------------------------------------------------------------------------------------------------------

/// Protocol election by VRF (Aztec's "Ideas on a proving network"): each proof-tree leaf goes to the node the
/// scheduler's VRF output picks among the candidates; each join goes to one of its two children's provers when it
/// can take it; a retried leaf goes first to its sibling's prover (the sibling "steps in").
///
/// The VRF input is (beacon, job, task index, copy number). The beacon is fixed when the policy is built, before
/// any job exists, so the requester cannot grind job ids against it once committed. The output picks among the
/// *free* candidates, which is scheduler state: a third party can verify the output with [`VrfPolicy::prove`] /
/// [`VrfPolicy::verify`], not the mapping to a node.
pub struct VrfPolicy {
    keypair: Keypair,
    beacon: [u8; 32],
}

impl std::fmt::Debug for VrfPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VrfPolicy")
            .field("public", &self.keypair.public)
            .field("beacon", &self.beacon)
            .finish()
    }
}

const VRF_CONTEXT: &[u8] = b"cairn-scheduler-vrf-v1";

impl VrfPolicy {
    pub fn new(secret: [u8; 32], beacon: [u8; 32]) -> Self {
        let mini = MiniSecretKey::from_bytes(&secret).expect("32 bytes is a valid mini secret key");
        Self {
            keypair: mini.expand_to_keypair(ExpansionMode::Uniform),
            beacon,
        }
    }

    /// Key and beacon derived from one seed (simulations and tests).
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5652_465f_4b45_5953);
        let mut secret = [0u8; 32];
        let mut beacon = [0u8; 32];
        rng.fill(&mut secret);
        rng.fill(&mut beacon);
        Self::new(secret, beacon)
    }

    pub fn public_key(&self) -> PublicKey {
        self.keypair.public
    }

    pub fn beacon(&self) -> [u8; 32] {
        self.beacon
    }

    fn message(beacon: &[u8; 32], task: TaskId, round: u32) -> [u8; 48] {
        let mut m = [0u8; 48];
        m[..32].copy_from_slice(beacon);
        m[32..40].copy_from_slice(&task.job.0.to_le_bytes());
        m[40..44].copy_from_slice(&task.index.to_le_bytes());
        m[44..48].copy_from_slice(&round.to_le_bytes());
        m
    }

    /// The VRF output for (task, round), as a number.
    pub fn output(&self, task: TaskId, round: u32) -> u64 {
        let msg = Self::message(&self.beacon, task, round);
        let inout = self
            .keypair
            .vrf_create_hash(signing_context(VRF_CONTEXT).bytes(&msg));
        u64::from_le_bytes(inout.make_bytes::<[u8; 8]>(b"cairn-select"))
    }

    /// The output with a proof anyone holding the public key and beacon can check.
    pub fn prove(&self, task: TaskId, round: u32) -> (u64, [u8; 32], [u8; 64]) {
        let msg = Self::message(&self.beacon, task, round);
        let (inout, proof, _) = self
            .keypair
            .vrf_sign(signing_context(VRF_CONTEXT).bytes(&msg));
        let out = u64::from_le_bytes(inout.make_bytes::<[u8; 8]>(b"cairn-select"));
        (out, inout.to_preout().to_bytes(), proof.to_bytes())
    }

    /// Checks a proof from [`VrfPolicy::prove`]; returns the output if it is valid.
    pub fn verify(
        public: &PublicKey,
        beacon: &[u8; 32],
        task: TaskId,
        round: u32,
        preout: &[u8; 32],
        proof: &[u8; 64],
    ) -> Option<u64> {
        let msg = Self::message(beacon, task, round);
        let preout = VRFPreOut::from_bytes(preout).ok()?;
        let proof = VRFProof::from_bytes(proof).ok()?;
        let (inout, _) = public
            .vrf_verify(signing_context(VRF_CONTEXT).bytes(&msg), &preout, &proof)
            .ok()?;
        Some(u64::from_le_bytes(
            inout.make_bytes::<[u8; 8]>(b"cairn-select"),
        ))
    }
}

impl SelectionPolicy for VrfPolicy {
    fn name(&self) -> &'static str {
        "vrf"
    }

    fn select(
        &mut self,
        req: &SelectionRequest<'_>,
        pool: &Candidates<'_>,
        _ledger: &Ledger,
    ) -> Selection {
        let mut out = Vec::new();
        // Joins: a child's prover. Retried leaves: the sibling's prover.
        let tree_pick = matches!(req.kind, TaskKind::Join { .. }) || req.failures > 0;
        if tree_pick {
            take_hints(req, pool, &mut out);
        }
        let total = pool.len_upper_bound();
        let mut round = req.assigned_before.wrapping_mul(16);
        let mut tries = 0;
        while (out.len() as u32) < req.wanted && total > 0 && tries < 16 {
            tries += 1;
            let v = self.output(req.task, round);
            round = round.wrapping_add(1);
            if let Some(n) = pool.nth((v % total as u64) as usize) {
                if !pool.is_excluded(n) && !out.contains(&n) {
                    out.push(n);
                }
            }
        }
        // Every elected node was excluded (tiny pools): fall back to pull order rather than stall.
        fill_fifo(req, pool, &mut out);
        Selection::nodes(out)
    }
}

// ---------------------------------------------------------------------------------------------------------------

/// Reputation-gated random (EPF proposal): a random node among the top quarter by activity score; once a task has
/// failed, an "emergency" race: the best `race` candidates all get it at once and the first valid proof wins.
#[derive(Debug, Clone)]
pub struct ReputationPolicy {
    rng: ChaCha8Rng,
    /// Copies in an emergency race.
    pub race: u32,
    /// Candidates looked at per selection.
    pub sample: usize,
}

impl ReputationPolicy {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5245_5055),
            race: 3,
            sample: 64,
        }
    }
}

impl SelectionPolicy for ReputationPolicy {
    fn name(&self) -> &'static str {
        "reputation"
    }

    fn select(
        &mut self,
        req: &SelectionRequest<'_>,
        pool: &Candidates<'_>,
        ledger: &Ledger,
    ) -> Selection {
        let mut sample = pool.sample(&mut self.rng, self.sample);
        if req.failures > 0 && !req.backup {
            // Emergency race among the best reputations in the sample.
            sample.sort_by_key(|n| (std::cmp::Reverse(ledger.reputation(*n)), *n));
            let n = req.wanted.max(self.race).min(req.wanted + req.max_extra) as usize;
            sample.truncate(n);
            return Selection::nodes(sample);
        }
        let bar = ledger.top_quartile_reputation();
        let (mut top, mut rest): (Vec<NodeId>, Vec<NodeId>) = sample
            .into_iter()
            .partition(|n| ledger.reputation(*n) >= bar);
        let mut out = Vec::new();
        while (out.len() as u32) < req.wanted && !top.is_empty() {
            let i = self.rng.random_range(0..top.len());
            out.push(top.swap_remove(i));
        }
        // Not enough of the top quarter free: the best of the rest.
        rest.sort_by_key(|n| (std::cmp::Reverse(ledger.reputation(*n)), *n));
        for n in rest {
            if out.len() as u32 >= req.wanted {
                break;
            }
            out.push(n);
        }
        Selection::nodes(out)
    }
}

// ---------------------------------------------------------------------------------------------------------------

/// Stake-weighted lottery (BABE style). Among a uniform sample of candidates, node i with stake share t_i (of the
/// sample's stake) wins when its draw u_i in [0,1) is below p_i = 1 - (1 - c)^(t_i); winners are ranked by
/// u_i / p_i. With probability about 1 - c nobody wins: then a stake-weighted draw decides (uniform if nobody in
/// the sample has stake). Nodes below `min_stake` are not eligible.
#[derive(Debug, Clone)]
pub struct StakePolicy {
    rng: ChaCha8Rng,
    /// Target probability that a slot is filled by the lottery itself.
    pub c: f64,
    pub min_stake: u64,
    pub sample: usize,
}

impl StakePolicy {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x0053_5441_4b45),
            c: 0.8,
            min_stake: 0,
            sample: 64,
        }
    }
}

impl SelectionPolicy for StakePolicy {
    fn name(&self) -> &'static str {
        "stake"
    }

    fn select(
        &mut self,
        req: &SelectionRequest<'_>,
        pool: &Candidates<'_>,
        ledger: &Ledger,
    ) -> Selection {
        let mut sample: Vec<(NodeId, u64)> = pool
            .sample(&mut self.rng, self.sample)
            .into_iter()
            .map(|n| (n, ledger.stake(n)))
            .filter(|(_, s)| *s >= self.min_stake)
            .collect();
        let total: u128 = sample.iter().map(|(_, s)| *s as u128).sum();
        let mut out = Vec::new();
        if total > 0 {
            let mut winners: Vec<(f64, NodeId)> = Vec::new();
            for &(n, s) in &sample {
                let t = s as f64 / total as f64;
                let p = 1.0 - (1.0 - self.c).powf(t);
                let u: f64 = self.rng.random();
                if p > 0.0 && u < p {
                    winners.push((u / p, n));
                }
            }
            winners.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            out.extend(winners.into_iter().map(|w| w.1).take(req.wanted as usize));
        }
        // Fallback: stake-weighted draws without replacement (uniform when no stake).
        sample.retain(|(n, _)| !out.contains(n));
        while (out.len() as u32) < req.wanted && !sample.is_empty() {
            let total: u128 = sample.iter().map(|(_, s)| *s as u128).sum();
            let i = if total == 0 {
                self.rng.random_range(0..sample.len())
            } else {
                let mut x = self.rng.random_range(0..total);
                let mut i = 0;
                while x >= sample[i].1 as u128 {
                    x -= sample[i].1 as u128;
                    i += 1;
                }
                i
            };
            out.push(sample.swap_remove(i).0);
        }
        Selection::nodes(out)
    }
}

// ---------------------------------------------------------------------------------------------------------------

/// Reverse Dutch auction (Boundless): the price offered for a task ramps from `min` to `max` over `ramp_ms` from
/// the moment it starts waiting; the first node whose ask is at most the current price locks it at that price
/// (as the price rises continuously, that is the lowest ask). The winner is paid the price it locked.
///
/// `min` and `max` are per mille of the job's reward per task. Asks come from [`Ledger::set_ask`]; a node with no
/// ask recorded gets a deterministic one from the seed, uniform in [`default_ask_min`, `default_ask_max`] per mille.
#[derive(Debug, Clone)]
pub struct AuctionPolicy {
    rng: ChaCha8Rng,
    seed: u64,
    pub min_permille: u64,
    pub max_permille: u64,
    pub ramp_ms: u64,
    pub default_ask_min: u64,
    pub default_ask_max: u64,
    pub sample: usize,
}

impl AuctionPolicy {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x4155_4354),
            seed,
            min_permille: 500,
            max_permille: 2_000,
            ramp_ms: 60_000,
            default_ask_min: 500,
            default_ask_max: 1_500,
            sample: 64,
        }
    }

    /// The price offered at `now` for a task waiting since `since` with base reward `reward`.
    pub fn price(&self, reward: u64, since: Time, now: Time) -> u64 {
        let min = reward as u128 * self.min_permille as u128 / 1000;
        let max = (reward as u128 * self.max_permille as u128 / 1000).max(min);
        let elapsed = now.saturating_sub(since).min(self.ramp_ms) as u128;
        let p = if self.ramp_ms == 0 {
            max
        } else {
            min + (max - min) * elapsed / self.ramp_ms as u128
        };
        p as u64
    }

    /// The ask of `node` for a task of base reward `reward`.
    pub fn ask(&self, ledger: &Ledger, node: NodeId, reward: u64) -> u64 {
        if let Some(a) = ledger.ask(node) {
            return a;
        }
        // splitmix64 of (seed, node): a stable per-node draw.
        let mut z = self.seed ^ node.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let span = self.default_ask_max.saturating_sub(self.default_ask_min) + 1;
        let permille = self.default_ask_min + z % span;
        (reward as u128 * permille as u128 / 1000) as u64
    }

    /// When the price for a task waiting since `since` first reaches `ask` (None if it never does).
    fn time_reaching(&self, reward: u64, since: Time, ask: u64) -> Option<Time> {
        if self.price(reward, since, since.saturating_add(self.ramp_ms)) < ask {
            return None;
        }
        // The price is monotone in time: binary search the first ms at which it is >= ask.
        let (mut lo, mut hi) = (0u64, self.ramp_ms);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.price(reward, since, since + mid) >= ask {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Some(since + lo)
    }
}

impl SelectionPolicy for AuctionPolicy {
    fn name(&self) -> &'static str {
        "auction"
    }

    fn select(
        &mut self,
        req: &SelectionRequest<'_>,
        pool: &Candidates<'_>,
        ledger: &Ledger,
    ) -> Selection {
        let price = self.price(req.reward, req.waiting_since, req.now);
        let mut bids: Vec<(u64, NodeId)> = pool
            .sample(&mut self.rng, self.sample)
            .into_iter()
            .map(|n| (self.ask(ledger, n, req.reward), n))
            .collect();
        bids.sort();
        let picks: Vec<Pick> = bids
            .iter()
            .filter(|(ask, _)| *ask <= price)
            .take(req.wanted as usize)
            .map(|(_, n)| Pick {
                node: *n,
                price: Some(price),
            })
            .collect();
        let retry_at = if picks.is_empty() {
            bids.first()
                .and_then(|(ask, _)| self.time_reaching(req.reward, req.waiting_since, *ask))
        } else {
            None
        };
        Selection { picks, retry_at }
    }
}
