//! The simulated population: heterogeneous weak nodes, a few faster ones, strong aggregators, faulty "noise"
//! nodes, churners and sybil groups, drawn from the run's parameters with a seeded RNG.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use cairn_scheduler::types::{NodeCapacity, NodeId};

use crate::model;
use crate::scenario::RunParams;

/// How a node behaves when it gets work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Behavior {
    Honest,
    /// Accepts work and never answers (keeps heartbeating: a griefer, not a crash).
    Silent,
    /// Answers quickly with a proof that does not verify.
    Invalid,
    /// Answers quickly with another prover's proof (not bound to itself).
    Copier,
    /// Proves something else (full compute) and claims it answers the task.
    WrongClaim,
    /// A made-up identity that never connected (`RunParams::phantoms`): an offer to it fails when the dial
    /// times out.
    Phantom,
}

impl Behavior {
    pub fn name(self) -> &'static str {
        match self {
            Behavior::Honest => "honest",
            Behavior::Silent => "silent",
            Behavior::Invalid => "invalid",
            Behavior::Copier => "copier",
            Behavior::WrongClaim => "wrong_claim",
            Behavior::Phantom => "phantom",
        }
    }
}

/// One simulated node identity.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub id: NodeId,
    /// Who operates it (sybil identities share one operator); rewards are concentrated per operator.
    pub operator: u32,
    pub behavior: Behavior,
    pub aggregator: bool,
    /// What the node advertises (a sybil identity advertises its whole machine).
    pub capacity: NodeCapacity,
    /// Its real speed relative to the 2-core reference machine.
    pub speed: f64,
    /// Link bandwidth in bytes per second and one-way latency in seconds.
    pub bandwidth: f64,
    pub latency: f64,
    /// Its link goes through a relay (see `RunParams::relayed`).
    pub relayed: bool,
    pub churns: bool,
    pub stake: u64,
    /// Asking price per task (reverse auction).
    pub ask: u64,
}

const GB: f64 = 1e9;

/// Draws a standard normal with Box-Muller (keeps the dependency set small and the draw count fixed).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn pick_weighted(rng: &mut ChaCha8Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

fn capacity(memory_gb: f64, speed: f64, recursion: bool) -> NodeCapacity {
    let memory_bytes = (memory_gb * GB) as u64;
    let max_po2 = model::max_po2_for_memory(memory_bytes).unwrap_or(0);
    let recursion = recursion
        && (memory_bytes as f64 - model::OS_RESERVE_BYTES) >= model::RECURSION_MEMORY_BYTES;
    NodeCapacity {
        memory_bytes,
        max_po2,
        cycles_per_sec: model::reference_hz(18) * speed,
        slots: 1,
        recursion,
    }
}

/// Builds the population. Layout by id: aggregators first, then sybil identities, then ordinary nodes; faulty
/// nodes are drawn among ordinary ones. Every draw happens in a fixed order so that a seed fixes the population.
pub fn population(p: &RunParams, rng: &mut ChaCha8Rng) -> Vec<NodeSpec> {
    let n = p.nodes as usize;
    let aggregators = ((p.aggregators * n as f64).round() as usize).min(n);
    let sybil_ids = (p.sybil_groups as usize * p.sybil_size as usize).min(n - aggregators);
    let bandwidth = p.bandwidth_mbps * 1e6 / 8.0;
    let latency = p.latency_ms / 1000.0;
    let mut nodes = Vec::with_capacity(n);
    let mut operator = 0u32;
    for i in 0..n {
        let id = NodeId(i as u64);
        // Draw everything for every node, used or not, so one knob does not shift the others' draws.
        let mem = p.memory_gb[pick_weighted(rng, &p.memory_weights)];
        let mut speed = (p.speed_sigma * normal(rng)).exp();
        let fast = rng.random::<f64>() < p.fast_fraction;
        let faulty = rng.random::<f64>() < p.noise;
        let mix = [p.mix_silent, p.mix_invalid, p.mix_copy, p.mix_wrong_claim];
        let kind = pick_weighted(rng, &mix);
        let churns = rng.random::<f64>() < p.churn;
        let ask_jitter = rng.random::<f64>();
        if fast {
            speed *= p.fast_speed;
        }
        let ask = (p.reward_per_task as f64 * (0.5 + ask_jitter)).round() as u64;
        let spec = if i < aggregators {
            operator += 1;
            NodeSpec {
                id,
                operator,
                behavior: Behavior::Honest,
                aggregator: true,
                capacity: capacity(p.aggregator_memory_gb, p.aggregator_speed, true),
                speed: p.aggregator_speed,
                bandwidth: bandwidth * 4.0,
                latency,
                relayed: false,
                churns: false,
                stake: p.stake,
                ask,
            }
        } else if i < aggregators + sybil_ids {
            let k = p.sybil_size as usize;
            let member = (i - aggregators) % k;
            if member == 0 {
                operator += 1;
            }
            // One machine (drawn for the group's first identity) split k ways; each identity claims all of it.
            let machine_speed = speed;
            let mut cap = capacity(mem.max(8.0), machine_speed, p.weak_recursion);
            cap.slots = 1;
            NodeSpec {
                id,
                operator,
                behavior: Behavior::Honest,
                aggregator: false,
                capacity: cap,
                speed: machine_speed / k as f64,
                bandwidth,
                latency,
                relayed: false,
                churns: false,
                stake: p.stake / k as u64,
                ask: ask / 2,
            }
        } else {
            operator += 1;
            let behavior = if faulty {
                [
                    Behavior::Silent,
                    Behavior::Invalid,
                    Behavior::Copier,
                    Behavior::WrongClaim,
                ][kind]
            } else {
                Behavior::Honest
            };
            NodeSpec {
                id,
                operator,
                behavior,
                aggregator: false,
                capacity: capacity(mem, speed, p.weak_recursion),
                speed,
                bandwidth,
                latency,
                relayed: false,
                churns: churns && behavior == Behavior::Honest,
                stake: p.stake,
                ask,
            }
        };
        nodes.push(spec);
    }
    // Relayed links (behind NAT, hole punching failed): drawn on another stream of the same generator, so a
    // population without relays is the same as before the knob existed.
    if p.relayed > 0.0 {
        let mut relay_rng = rng.clone();
        relay_rng.set_stream(0x7e1a7);
        let relay_bw = p.relay_mbps * 1e6 / 8.0;
        for node in nodes.iter_mut().filter(|n| !n.aggregator) {
            if relay_rng.random::<f64>() < p.relayed {
                node.relayed = true;
                node.latency += p.relay_latency_ms / 1000.0;
                node.bandwidth = node.bandwidth.min(relay_bw);
            }
        }
    }
    // Sybil identities of one machine share it: the group's machine speed comes from its first identity.
    if sybil_ids > 0 {
        let k = p.sybil_size as usize;
        for g in 0..p.sybil_groups as usize {
            let first = aggregators + g * k;
            let machine = nodes[first].speed * k as f64;
            let cap = nodes[first].capacity;
            for node in nodes.iter_mut().skip(first).take(k) {
                node.speed = machine / k as f64;
                node.capacity = cap;
            }
        }
    }
    // Made-up identities announced by one flooder: in the pool only without the newcomer rule (they never
    // connect, so with it they never get past their probe). They announce first, so they hold the lowest
    // ids (a client numbers provers as it hears of them) and FIFO placement reaches them first, as the
    // made-up identities in issue 29's measurement were; the rest of the population is drawn as without them.
    if p.phantoms > 0 && !p.newcomer_rule {
        operator += 1;
        let phantoms = p.phantoms as usize;
        for node in nodes.iter_mut() {
            node.id = NodeId(node.id.0 + phantoms as u64);
        }
        let made_up = (0..phantoms).map(|i| {
            let mut cap = capacity(16.0, p.phantom_speed, true);
            cap.slots = 8;
            NodeSpec {
                id: NodeId(i as u64),
                operator,
                behavior: Behavior::Phantom,
                aggregator: false,
                capacity: cap,
                speed: 1.0,
                bandwidth,
                latency,
                relayed: false,
                churns: false,
                stake: 0,
                ask: 1,
            }
        });
        nodes.splice(0..0, made_up);
    }
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn population_shape() {
        let p = RunParams {
            nodes: 1000,
            aggregators: 0.05,
            noise: 0.2,
            sybil_groups: 2,
            sybil_size: 5,
            ..RunParams::default()
        };
        let nodes = population(&p, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(nodes.len(), 1000);
        assert_eq!(nodes.iter().filter(|n| n.aggregator).count(), 50);
        let faulty = nodes
            .iter()
            .filter(|n| n.behavior != Behavior::Honest)
            .count();
        assert!((150..250).contains(&faulty), "{faulty}");
        // Sybil identities: 2 operators with 5 identities each.
        assert_eq!(nodes[50].operator, nodes[54].operator);
        assert_ne!(nodes[54].operator, nodes[55].operator);
        assert!(nodes[50].speed < nodes[50].capacity.cycles_per_sec / model::reference_hz(18));
        // 4 GB nodes take po2 <= 18.
        assert!(nodes
            .iter()
            .filter(|n| n.capacity.memory_bytes == 4_000_000_000)
            .all(|n| n.capacity.max_po2 == 18));
        let again = population(&p, &mut ChaCha8Rng::seed_from_u64(1));
        assert!(nodes
            .iter()
            .zip(&again)
            .all(|(a, b)| a.speed == b.speed && a.behavior == b.behavior));
    }

    #[test]
    fn relayed_links_are_slower_and_leave_every_other_draw_alone() {
        let base = RunParams {
            nodes: 2000,
            aggregators: 0.05,
            noise: 0.2,
            ..RunParams::default()
        };
        let relayed = RunParams {
            relayed: 0.3,
            relay_latency_ms: 40.0,
            relay_mbps: 20.0,
            ..base.clone()
        };
        let a = population(&base, &mut ChaCha8Rng::seed_from_u64(3));
        let b = population(&relayed, &mut ChaCha8Rng::seed_from_u64(3));
        assert!(a.iter().all(|n| !n.relayed));
        let count = b.iter().filter(|n| n.relayed).count();
        assert!(
            (500..650).contains(&count),
            "{count} of 1900 ordinary nodes relayed"
        );
        assert!(b.iter().filter(|n| n.aggregator).all(|n| !n.relayed));
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                (x.speed, x.behavior, x.capacity),
                (y.speed, y.behavior, y.capacity)
            );
            if y.relayed {
                assert!((y.latency - x.latency - 0.040).abs() < 1e-9);
                assert_eq!(y.bandwidth, x.bandwidth.min(20e6 / 8.0));
            } else {
                assert_eq!((x.latency, x.bandwidth), (y.latency, y.bandwidth));
            }
        }
    }
}
