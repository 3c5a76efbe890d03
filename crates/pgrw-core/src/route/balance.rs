//! Picking one node among a read's candidates: random, round robin, least
//! outstanding, weighted. The randomness, the round-robin position and the
//! load the driver last counted are state the caller owns ([`Balancer`]), so
//! routing stays deterministic for a seed and a load.

use crate::route::policy::Balancing;
use crate::route::topology::{Node, NodeId, Topology};

/// The caller-owned state balancing needs: a small PRNG (SplitMix64), the
/// round-robin position, and the requests in flight on each node.
///
/// A driver keeps one per thread or per task (seeded from anything: a
/// counter, the time, an OS random number); sharing one behind a lock
/// would serialize routing for no benefit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Balancer {
    state: u64,
    turn: u64,
    load: Vec<u32>,
}

impl Balancer {
    /// A balancer whose choices are determined by `seed`.
    pub const fn with_seed(seed: u64) -> Balancer {
        Balancer {
            state: seed,
            turn: 0,
            load: Vec::new(),
        }
    }

    /// Records the requests in flight on each node, by [`NodeId`] index, as
    /// the driver counts them just before routing (its checked-out
    /// connections, say); least-outstanding balancing picks among the
    /// candidates with the fewest. A node the load does not list counts 0.
    /// Reuses its buffer: no allocation once it has seen every node.
    pub fn set_load(&mut self, load: impl IntoIterator<Item = u32>) {
        self.load.clear();
        self.load.extend(load);
    }

    /// The requests in flight on `node`, as last recorded.
    /// The requests in flight on `node`, as last set (0 when not listed).
    pub fn load_of(&self, node: NodeId) -> u32 {
        self.load.get(node.index()).copied().unwrap_or(0)
    }

    /// The next pseudo-random number (SplitMix64).
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A pseudo-random number in `0..bound` (`bound` > 0), by multiply-shift.
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// Picks one node among those of `topology` for which `is_candidate` holds,
    /// or `None` when there is none. Allocates nothing.
    pub fn pick(
        &mut self,
        balancing: Balancing,
        topology: &Topology,
        is_candidate: impl Fn(NodeId, &Node) -> bool,
    ) -> Option<NodeId> {
        let candidates = || topology.iter().filter(|&(id, node)| is_candidate(id, node));
        let count = candidates().count() as u64;
        if count == 0 {
            return None;
        }
        let nth = |n: u64| candidates().nth(n as usize).map(|(id, _)| id);
        match balancing {
            Balancing::Random => {
                let n = self.below(count);
                nth(n)
            }
            Balancing::RoundRobin => {
                let n = self.turn % count;
                self.turn = self.turn.wrapping_add(1);
                nth(n)
            }
            Balancing::LeastOutstanding => {
                let least = candidates().map(|(id, _)| self.load_of(id)).min()?;
                let ties = candidates()
                    .filter(|&(id, _)| self.load_of(id) == least)
                    .count();
                let n = self.below(ties as u64) as usize;
                candidates()
                    .filter(|&(id, _)| self.load_of(id) == least)
                    .nth(n)
                    .map(|(id, _)| id)
            }
            Balancing::Weighted => {
                let total: u64 = candidates().map(|(_, node)| u64::from(node.weight)).sum();
                if total == 0 {
                    let n = self.below(count);
                    return nth(n);
                }
                let mut point = self.below(total);
                for (id, node) in candidates() {
                    let weight = u64::from(node.weight);
                    if point < weight {
                        return Some(id);
                    }
                    point -= weight;
                }
                None
            }
        }
    }
}

impl Default for Balancer {
    /// A balancer with a fixed seed: fine for round robin and tests; seed
    /// random balancing with [`Balancer::with_seed`] in production.
    fn default() -> Balancer {
        Balancer::with_seed(0x5EED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::topology::Role;

    fn replicas(count: usize) -> Topology {
        let nodes = (0..count)
            .map(|i| Node::new(&format!("replica{i}"), Role::Replica))
            .collect();
        Topology::new(nodes, crate::Lsn::INVALID)
    }

    #[test]
    fn no_candidate_gives_none() {
        let topology = replicas(3);
        let mut balancer = Balancer::default();
        assert_eq!(
            balancer.pick(Balancing::Random, &topology, |_, _| false),
            None
        );
    }

    #[test]
    fn round_robin_visits_candidates_in_turn() {
        let topology = replicas(3);
        let mut balancer = Balancer::default();
        let picks: Vec<_> = (0..6)
            .map(|_| balancer.pick(Balancing::RoundRobin, &topology, |_, _| true))
            .collect();
        let expected = [0, 1, 2, 0, 1, 2].map(|i| Some(NodeId(i)));
        assert_eq!(picks, expected);
    }

    /// Least-outstanding over three replicas with `load` always picks `expected`
    /// among those `is_candidate` accepts.
    fn assert_least_outstanding_picks(
        load: &[u32],
        is_candidate: impl Fn(NodeId, &Node) -> bool,
        expected: u16,
    ) {
        let topology = replicas(3);
        let mut balancer = Balancer::default();
        balancer.set_load(load.iter().copied());
        for _ in 0..20 {
            let pick = balancer.pick(Balancing::LeastOutstanding, &topology, &is_candidate);
            assert_eq!(pick, Some(NodeId(expected)), "load {load:?}");
        }
    }

    #[test]
    fn least_outstanding_picks_the_idlest() {
        assert_least_outstanding_picks(&[4, 1, 2], |_, _| true, 1);
    }

    #[test]
    fn least_outstanding_counts_unlisted_nodes_as_idle() {
        assert_least_outstanding_picks(&[2, 1], |_, _| true, 2);
    }

    #[test]
    fn least_outstanding_ignores_the_load_of_non_candidates() {
        assert_least_outstanding_picks(&[0, 3, 5], |id, _| id.0 != 0, 1);
    }

    #[test]
    fn weighted_never_picks_a_zero_weight_node_beside_weighted_ones() {
        let mut topology = replicas(2);
        topology.nodes[0].weight = 0;
        let mut balancer = Balancer::default();
        for _ in 0..100 {
            let pick = balancer.pick(Balancing::Weighted, &topology, |_, _| true);
            assert_eq!(pick, Some(NodeId(1)));
        }
    }

    #[test]
    fn weighted_with_all_weights_zero_still_picks_a_candidate() {
        let mut topology = replicas(2);
        topology.nodes.iter_mut().for_each(|node| node.weight = 0);
        let mut balancer = Balancer::default();
        assert!(
            balancer
                .pick(Balancing::Weighted, &topology, |_, _| true)
                .is_some()
        );
    }

    #[test]
    fn same_seed_same_choices() {
        let topology = replicas(5);
        let mut a = Balancer::with_seed(42);
        let mut b = Balancer::with_seed(42);
        for _ in 0..50 {
            assert_eq!(
                a.pick(Balancing::Random, &topology, |_, _| true),
                b.pick(Balancing::Random, &topology, |_, _| true)
            );
        }
    }
}
