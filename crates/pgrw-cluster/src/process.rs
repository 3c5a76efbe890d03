//! Server processes seen from outside: postmaster pids, liveness, signals.
//!
//! These functions are synchronous on purpose: the test harness calls them
//! from `Drop`, where no async runtime can be relied upon.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::layout::NodeLayout;

/// The postmaster pid recorded in the node's `postmaster.pid`, if any.
pub fn postmaster_pid(node: &NodeLayout) -> Option<i32> {
    let text = std::fs::read_to_string(node.pid_file()).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// True when the node's postmaster process exists.
pub fn is_running(node: &NodeLayout) -> bool {
    postmaster_pid(node).is_some_and(is_alive)
}

/// True when `pid` is a live process (a zombie, which no parent reaped, is dead).
pub fn is_alive(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                != Some("Z")
        }
        Err(_) => true,
    }
}

/// The direct children of `pid` (a postmaster's backends and auxiliary processes).
pub fn children_of(pid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    let (_, rest) = stat.rsplit_once(')')?;
                    rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// Sends `signal` to `pid`, ignoring a process that is already gone.
pub fn signal(pid: i32, signal: Signal) {
    let _ = kill(Pid::from_raw(pid), signal);
}

/// Stops every process of the node with SIGSTOP, as a hung machine would
/// look from outside: connections stay open, nothing answers. The postmaster
/// is stopped first, so that it forks no child the second step would miss.
/// False when the node is not running.
pub fn freeze(node: &NodeLayout) -> bool {
    let Some(pid) = postmaster_pid(node).filter(|&pid| is_alive(pid)) else {
        return false;
    };
    signal(pid, Signal::SIGSTOP);
    for child in children_of(pid) {
        signal(child, Signal::SIGSTOP);
    }
    true
}

/// Lets every process of a frozen node run again (SIGCONT), children first,
/// so that the postmaster finds them running. Harmless on a node that is not
/// frozen; false when the node is not running.
pub fn thaw(node: &NodeLayout) -> bool {
    let Some(pid) = postmaster_pid(node).filter(|&pid| is_alive(pid)) else {
        return false;
    };
    for child in children_of(pid) {
        signal(child, Signal::SIGCONT);
    }
    signal(pid, Signal::SIGCONT);
    true
}

/// Waits until none of `pids` is alive; false if some still are at the deadline.
pub fn wait_for_exit(pids: &[i32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pids.iter().all(|&pid| !is_alive(pid)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the postmaster with SIGKILL, as a crash would, and waits until the
/// children it orphaned have exited too, so that a later start finds no
/// process still attached to the old shared memory. Children that outlive
/// `timeout` are killed. Returns false if something still lives after that.
pub fn crash(node: &NodeLayout, timeout: Duration) -> bool {
    let Some(pid) = postmaster_pid(node).filter(|&pid| is_alive(pid)) else {
        return true;
    };
    let children = children_of(pid);
    signal(pid, Signal::SIGKILL);
    let mut all = children.clone();
    all.push(pid);
    let mut gone = wait_for_exit(&all, timeout);
    if !gone {
        for &child in &children {
            signal(child, Signal::SIGKILL);
        }
        gone = wait_for_exit(&all, Duration::from_secs(5));
    }
    if gone {
        remove_stale_pid_file(node, pid);
    }
    gone
}

/// Removes the lock file a dead postmaster left behind.
///
/// PostgreSQL treats a lock file whose pid still exists as a running server,
/// and a killed postmaster lingers as a zombie until its parent (often init)
/// reaps it; once it and its children are known dead the file is only stale.
fn remove_stale_pid_file(node: &NodeLayout, dead_pid: i32) {
    if postmaster_pid(node) == Some(dead_pid) {
        let _ = std::fs::remove_file(node.pid_file());
    }
}

/// Stops the node at once (PostgreSQL's "immediate" shutdown, SIGQUIT), falling
/// back to SIGKILL of the postmaster and its children after `timeout`.
pub fn stop_immediately(node: &NodeLayout, timeout: Duration) -> bool {
    let Some(pid) = postmaster_pid(node).filter(|&pid| is_alive(pid)) else {
        return true;
    };
    // A frozen node (see `freeze`) would hold SIGQUIT pending until the
    // SIGKILL fallback: let it run so that it shuts down as asked.
    thaw(node);
    let children = children_of(pid);
    signal(pid, Signal::SIGQUIT);
    let mut all = children;
    all.push(pid);
    if wait_for_exit(&all, timeout) {
        return true;
    }
    for &straggler in &all {
        signal(straggler, Signal::SIGKILL);
    }
    wait_for_exit(&all, Duration::from_secs(5))
}
