//! The live status block of `pgrw up`: a line per node (name, address, role,
//! health, replay lag, statements routed there and their rate), refreshed
//! every second.
//!
//! On a terminal the block is rewritten in place (cursor up, clear to the end
//! of the screen). Anywhere else (a pipe, a CI log) a whole block is written
//! only when a node's role or health changes, or every ten refreshes, so logs
//! stay readable. Deciding what to write is pure ([`LiveStatus::frame`]);
//! [`show_live`] only reads the proxy's state and writes stdout.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgrw_core::route::{Health, Lag, Role, Topology};
use pgrw_proxy::ProxyState;
use pgrw_proxy::stats::StatsSnapshot;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::console::{self, rewind};

/// Outside a terminal, a block is written at least every this many refreshes.
const REFRESHES_PER_LOGGED_BLOCK: u32 = 10;

/// What the proxy knew at one moment.
#[derive(Debug, Clone)]
pub struct Reading {
    /// When it was read.
    pub at: Instant,
    /// The node monitor's topology: roles, health, lag.
    pub topology: Arc<Topology>,
    /// The proxy's counters.
    pub stats: StatsSnapshot,
}

impl Reading {
    /// The proxy's state now.
    pub fn of(state: &ProxyState) -> Reading {
        Reading {
            at: Instant::now(),
            topology: state.topology(),
            stats: state.stats(),
        }
    }
}

/// One node as the status block shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    /// Its name (`primary`, `replica1`).
    pub name: String,
    /// `host:port`.
    pub address: String,
    /// Primary, replica or not known yet.
    pub role: Role,
    /// Up, down or banned.
    pub health: Health,
    /// For a replica, whether it follows the current primary (an orphan gets no reads).
    pub follows_primary: bool,
    /// How far behind the primary it replays (replicas).
    pub lag: Lag,
    /// Statements (units of work) routed to it since the proxy started.
    pub routed: u64,
    /// Routed per second since the previous block; `None` for the first.
    pub per_second: Option<f64>,
}

/// Everything one status block shows.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusBlock {
    /// One entry per node, in configuration order.
    pub nodes: Vec<NodeStatus>,
    /// Client connections open now.
    pub connections_open: u64,
    /// Client connections since the proxy started.
    pub connections_total: u64,
}

impl StatusBlock {
    /// The block for `current`, with rates measured since `previous`.
    /// `addresses` are the nodes' `host:port`, in configuration order.
    pub fn new(addresses: &[String], previous: Option<&Reading>, current: &Reading) -> StatusBlock {
        let seconds = previous
            .map(|previous| {
                current
                    .at
                    .saturating_duration_since(previous.at)
                    .as_secs_f64()
            })
            .filter(|seconds| *seconds > 0.0);
        let nodes = current
            .topology
            .iter()
            .map(|(id, node)| {
                let routed = current.stats.node(id).total();
                let per_second = previous.zip(seconds).map(|(previous, seconds)| {
                    routed.saturating_sub(previous.stats.node(id).total()) as f64 / seconds
                });
                NodeStatus {
                    name: node.name.to_string(),
                    address: addresses.get(id.index()).cloned().unwrap_or_default(),
                    role: node.role,
                    health: node.health,
                    follows_primary: node.follows_primary(),
                    lag: node.lag,
                    routed,
                    per_second,
                }
            })
            .collect();
        StatusBlock {
            nodes,
            connections_open: current.stats.connections_open,
            connections_total: current.stats.connections_total,
        }
    }

    /// What, changing, deserves a new block in a log: each node's role and
    /// health (not its counters or lag, which change all the time).
    fn shape(&self) -> Vec<(Role, &'static str)> {
        self.nodes
            .iter()
            .map(|node| (node.role, node.health_text()))
            .collect()
    }

    /// The block as lines (no newlines): a header, then one aligned line per node.
    pub fn lines(&self) -> Vec<String> {
        let plural = if self.connections_open == 1 { "" } else { "s" };
        let mut lines = vec![format!(
            "nodes ({} client connection{plural} open, {} since start):",
            self.connections_open, self.connections_total
        )];
        let rows: Vec<[String; 7]> = self
            .nodes
            .iter()
            .map(|node| {
                [
                    node.name.clone(),
                    node.address.clone(),
                    node.role.to_string(),
                    node.health_text().to_string(),
                    format!("lag {}", lag_text(node.role, node.lag)),
                    node.routed.to_string(),
                    match node.per_second {
                        Some(rate) => format!("{rate:.1}/s"),
                        None => "-".to_string(),
                    },
                ]
            })
            .collect();
        let mut widths = [0usize; 7];
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        for [name, address, role, health, lag, routed, rate] in &rows {
            let line = format!(
                "  {name:<w0$}  {address:<w1$}  {role:<w2$}  {health:<w3$}  {lag:<w4$}  \
                 routed {routed:>w5$}  {rate:>w6$}",
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
                w4 = widths[4],
                w5 = widths[5],
                w6 = widths[6],
            );
            lines.push(line.trim_end().to_string());
        }
        lines
    }
}

impl NodeStatus {
    /// `up`, `orphan` (up, but not following the current primary), `down` or
    /// `banned` (a ban's end is a monotonic time, meaningless to a reader).
    fn health_text(&self) -> &'static str {
        match self.health {
            Health::Up if !self.follows_primary => "orphan",
            Health::Up => "up",
            Health::Down => "down",
            Health::Banned { .. } => "banned",
        }
    }
}

/// A replica's replay lag in bytes and time (`?` where unknown); `-` for the primary.
fn lag_text(role: Role, lag: Lag) -> String {
    if role == Role::Primary {
        return "-".to_string();
    }
    match (lag.bytes, lag.millis) {
        (None, None) => "?".to_string(),
        (bytes, millis) => format!(
            "{}, {}",
            bytes.map_or_else(|| "? B".to_string(), bytes_text),
            millis.map_or_else(|| "? ms".to_string(), millis_text)
        ),
    }
}

/// `512 B`, `1.5 KiB`, `12.0 MiB`, `2.3 GiB`.
fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `350 ms`, `2.5 s`, `3.0 min`.
fn millis_text(millis: u64) -> String {
    match millis {
        0..1_000 => format!("{millis} ms"),
        1_000..60_000 => format!("{:.1} s", millis as f64 / 1_000.0),
        _ => format!("{:.1} min", millis as f64 / 60_000.0),
    }
}

/// Decides when a status block is written and how: in place on a terminal,
/// whole and only now and then in a log.
#[derive(Debug)]
pub struct LiveStatus {
    /// The nodes' `host:port`, in configuration order.
    addresses: Vec<String>,
    /// Whether stdout is a terminal (rewrite in place) or a log.
    terminal: bool,
    /// In a log, the longest time between two blocks.
    log_every: Duration,
    /// The last block written.
    shown: Option<Shown>,
}

/// A block that was written.
#[derive(Debug)]
struct Shown {
    reading: Reading,
    lines: usize,
    shape: Vec<(Role, &'static str)>,
}

impl LiveStatus {
    /// A display for nodes at `addresses`, onto a terminal or a log (writing a
    /// block at least every `log_every`).
    pub fn new(addresses: Vec<String>, terminal: bool, log_every: Duration) -> LiveStatus {
        LiveStatus {
            addresses,
            terminal,
            log_every,
            shown: None,
        }
    }

    /// The block is no longer on the terminal (a log line took its place):
    /// the next one is drawn anew, not over it.
    pub fn cleared(&mut self) {
        if let Some(shown) = &mut self.shown {
            shown.lines = 0;
        }
    }

    /// How many lines the last block written has.
    pub fn block_lines(&self) -> usize {
        self.shown.as_ref().map_or(0, |shown| shown.lines)
    }

    /// What to write for `reading`, if anything: on a terminal, the block
    /// replacing the previous one; in a log, a whole block when the nodes'
    /// roles or health changed or `log_every` has passed.
    pub fn frame(&mut self, reading: Reading) -> Option<String> {
        let previous = self.shown.as_ref();
        let block = StatusBlock::new(
            &self.addresses,
            previous.map(|shown| &shown.reading),
            &reading,
        );
        let shape = block.shape();
        let due = match previous {
            None => true,
            Some(_) if self.terminal => true,
            Some(shown) => {
                shown.shape != shape
                    || reading.at.saturating_duration_since(shown.reading.at) >= self.log_every
            }
        };
        if !due {
            return None;
        }
        let lines = block.lines();
        // A blank line sets a block apart from what came before; in place, the
        // first one's stays and only the block is rewritten.
        let mut frame = match previous {
            Some(shown) if self.terminal && shown.lines > 0 => rewind(shown.lines),
            _ => String::from("\n"),
        };
        for line in &lines {
            frame.push_str(line);
            frame.push('\n');
        }
        self.shown = Some(Shown {
            reading,
            lines: lines.len(),
            shape,
        });
        Some(frame)
    }
}

/// Writes the status of `state`'s nodes to stdout every `refresh` (in a log:
/// see [`LiveStatus::frame`]) until `stop` fires, starting once `demo` (if any) has finished so that its
/// lines are not interleaved with the block. Leaves the cursor at the start of
/// a fresh line.
pub async fn show_live(
    state: Arc<ProxyState>,
    refresh: Duration,
    demo: Option<JoinHandle<()>>,
    mut stop: oneshot::Receiver<()>,
) {
    let terminal = std::io::stdout().is_terminal();
    if let Some(demo) = demo {
        tokio::select! {
            _ = demo => {}
            _ = &mut stop => return,
        }
    }
    let addresses = state
        .config
        .nodes
        .iter()
        .map(|node| format!("{}:{}", node.host, node.port))
        .collect();
    let log_every = refresh * REFRESHES_PER_LOGGED_BLOCK;
    let mut live = LiveStatus::new(addresses, terminal, log_every);
    let mut ticks = tokio::time::interval(refresh);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticks.tick() => {
                // Held while writing: a log line waits, then clears the block.
                let mut on_screen = console::block_on_screen();
                if *on_screen == 0 {
                    live.cleared();
                }
                if let Some(frame) = live.frame(Reading::of(&state)) {
                    write_stdout(&frame);
                    if terminal {
                        *on_screen = live.block_lines();
                    }
                }
            }
        }
    }
    let mut on_screen = console::block_on_screen();
    // The last block stays: later log lines go below it.
    *on_screen = 0;
    if terminal {
        // Ctrl-C's `^C` echo lands below the block: end its line.
        write_stdout("\n");
    }
}

/// Writes and flushes; a closed stdout (the reader went away) is not worth
/// stopping the proxy for.
fn write_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgrw_core::Lsn;
    use pgrw_core::route::Node;
    use pgrw_proxy::stats::NodeRouted;

    fn node(name: &str, role: Role, health: Health, lag: Lag) -> Node {
        let mut node = Node::new(name, role);
        node.health = health;
        node.lag = lag;
        node
    }

    fn routed(reads: u64) -> NodeRouted {
        NodeRouted {
            reads,
            writes: 0,
            other: 0,
        }
    }

    /// A primary and two replicas at `at`, with `routed[i]` reads on node i.
    fn reading(at: Instant, replica2: Health, routed_counts: [u64; 3]) -> Reading {
        let lag = Lag {
            bytes: Some(2048),
            millis: Some(350),
        };
        Reading {
            at,
            topology: Arc::new(Topology::new(
                vec![
                    node("primary", Role::Primary, Health::Up, Lag::NONE),
                    node("replica1", Role::Replica, Health::Up, Lag::NONE),
                    node("replica2", Role::Replica, replica2, lag),
                ],
                Lsn(4096),
            )),
            stats: StatsSnapshot {
                nodes: routed_counts.into_iter().map(routed).collect(),
                connections_open: 1,
                connections_total: 3,
                ..StatsSnapshot::default()
            },
        }
    }

    fn addresses() -> Vec<String> {
        ["127.0.0.1:5432", "127.0.0.1:5433", "127.0.0.1:5434"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn a_block_is_a_header_and_one_aligned_line_per_node() {
        let start = Instant::now();
        let previous = reading(start, Health::Up, [0, 0, 0]);
        let current = reading(start + Duration::from_secs(2), Health::Up, [2, 10, 0]);

        let lines = StatusBlock::new(&addresses(), Some(&previous), &current).lines();

        assert_eq!(
            lines,
            [
                "nodes (1 client connection open, 3 since start):",
                "  primary   127.0.0.1:5432  primary  up  lag -                routed  2  1.0/s",
                "  replica1  127.0.0.1:5433  replica  up  lag 0 B, 0 ms        routed 10  5.0/s",
                "  replica2  127.0.0.1:5434  replica  up  lag 2.0 KiB, 350 ms  routed  0  0.0/s",
            ]
        );
    }

    #[test]
    fn the_first_block_has_no_rate() {
        let current = reading(Instant::now(), Health::Up, [1, 2, 3]);
        let block = StatusBlock::new(&addresses(), None, &current);
        assert!(block.nodes.iter().all(|node| node.per_second.is_none()));
        assert!(
            block.lines()[1].ends_with("routed 1  -"),
            "{:?}",
            block.lines()
        );
    }

    #[test]
    fn a_banned_node_reads_banned_without_its_monotonic_deadline() {
        let banned = Health::Banned {
            until: Duration::from_secs(99),
        };
        let current = reading(Instant::now(), banned, [0, 0, 0]);
        let lines = StatusBlock::new(&addresses(), None, &current).lines();
        assert!(lines[3].contains("  banned  "), "{}", lines[3]);
        assert!(!lines[3].contains("99"), "{}", lines[3]);
    }

    #[test]
    fn a_replica_that_does_not_follow_the_primary_reads_orphan() {
        let mut current = reading(Instant::now(), Health::Up, [0, 0, 0]);
        let mut topology = Topology::clone(&current.topology);
        topology.nodes[2].orphan = Some(pgrw_core::route::Orphan::NotStreaming);
        current.topology = Arc::new(topology);
        let lines = StatusBlock::new(&addresses(), None, &current).lines();
        assert!(lines[3].contains("  orphan  "), "{}", lines[3]);
    }

    #[test]
    fn lag_reads_in_units_a_person_compares() {
        assert_eq!(bytes_text(512), "512 B");
        assert_eq!(bytes_text(1536), "1.5 KiB");
        assert_eq!(bytes_text(12 * 1024 * 1024), "12.0 MiB");
        assert_eq!(bytes_text(5 * 1024 * 1024 * 1024 * 1024), "5120.0 GiB");
        assert_eq!(millis_text(350), "350 ms");
        assert_eq!(millis_text(2_500), "2.5 s");
        assert_eq!(millis_text(180_000), "3.0 min");
        let unknown = Lag {
            bytes: None,
            millis: None,
        };
        assert_eq!(lag_text(Role::Replica, unknown), "?");
        assert_eq!(lag_text(Role::Unknown, unknown), "?");
        let bytes_only = Lag {
            bytes: Some(10),
            millis: None,
        };
        assert_eq!(lag_text(Role::Replica, bytes_only), "10 B, ? ms");
        assert_eq!(lag_text(Role::Primary, unknown), "-");
    }

    #[test]
    fn on_a_terminal_every_reading_rewrites_the_previous_block_in_place() {
        let start = Instant::now();
        let mut live = LiveStatus::new(addresses(), true, Duration::from_secs(10));

        let first = live.frame(reading(start, Health::Up, [0, 0, 0])).unwrap();
        let second = live
            .frame(reading(
                start + Duration::from_secs(1),
                Health::Up,
                [0, 1, 0],
            ))
            .unwrap();

        assert!(!first.contains('\x1b'), "{first:?}");
        assert!(first.starts_with("\nnodes ("), "{first:?}");
        assert_eq!(first.lines().count(), 5);
        assert!(second.starts_with("\x1b[4A\x1b[J"), "{second:?}");
        assert!(second.ends_with('\n'));
        assert!(second.contains("routed 1  1.0/s"), "{second}");
    }

    #[test]
    fn on_a_terminal_a_block_cleared_for_a_log_line_is_drawn_anew_below_it() {
        let start = Instant::now();
        let mut live = LiveStatus::new(addresses(), true, Duration::from_secs(10));
        live.frame(reading(start, Health::Up, [0, 0, 0]));
        assert_eq!(live.block_lines(), 4);

        live.cleared();
        let next = live
            .frame(reading(
                start + Duration::from_secs(1),
                Health::Up,
                [0, 0, 0],
            ))
            .unwrap();

        assert!(next.starts_with("\nnodes ("), "{next:?}");
        assert!(!next.contains('\x1b'), "{next:?}");
    }

    #[test]
    fn in_a_log_counters_alone_wait_for_the_next_periodic_block() {
        let start = Instant::now();
        let mut live = LiveStatus::new(addresses(), false, Duration::from_secs(10));

        assert!(live.frame(reading(start, Health::Up, [0, 0, 0])).is_some());
        let soon = start + Duration::from_secs(1);
        assert_eq!(live.frame(reading(soon, Health::Up, [5, 5, 5])), None);
        let later = start + Duration::from_secs(10);
        let block = live.frame(reading(later, Health::Up, [9, 9, 9])).unwrap();

        assert!(!block.contains('\x1b'), "{block:?}");
        assert!(block.starts_with("\nnodes ("), "{block:?}");
        // The rate covers the time since the previous written block.
        assert!(block.contains("routed 9  0.9/s"), "{block}");
    }

    #[test]
    fn in_a_log_a_health_change_writes_a_block_at_once() {
        let start = Instant::now();
        let mut live = LiveStatus::new(addresses(), false, Duration::from_secs(10));
        live.frame(reading(start, Health::Up, [0, 0, 0]));

        let soon = start + Duration::from_millis(500);
        let block = live.frame(reading(soon, Health::Down, [0, 0, 0])).unwrap();

        assert!(
            block
                .lines()
                .any(|line| line.contains("replica2") && line.contains(" down "))
        );
    }
}
