//! What a reload does to the nodes (sans I/O): which keep their id, which are
//! removed, which are added, and whether that may be done at all.
//!
//! A node is the same node when a node of the same name is reached the same
//! way (`host`, `port`, `sslmode`, `sslrootcert`): it keeps its id, and a
//! changed `weight` applies to it. A node reached another way is another
//! node — whatever its name, its WAL position, its stats and a session's
//! last read there say nothing of the new one — so it is removed and added
//! with a new id. A node last seen as the primary is never removed: a reload
//! must not leave the proxy without a way to write.

use pgrw_core::route::{NodeId, Role, Topology};

use crate::config::NodeConfig;

/// The nodes a reload keeps, removes and adds.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct NodeChanges {
    /// Kept nodes, with the weight the new file gives them.
    pub(crate) kept: Vec<(NodeId, u32)>,
    /// Removed nodes, with the key path that removes them (`nodes` when the
    /// name is gone, `nodes[2].port` when it is reached another way).
    pub(crate) removed: Vec<(NodeId, String, String)>,
    /// New nodes, with their position in the new file.
    pub(crate) added: Vec<(usize, NodeConfig)>,
}

/// Compares the nodes in use (`current`, by id) with the new file's.
pub(crate) fn node_changes(current: &[(NodeId, NodeConfig)], new: &[NodeConfig]) -> NodeChanges {
    let mut changes = NodeChanges::default();
    for (id, node) in current {
        let Some((index, after)) = new
            .iter()
            .enumerate()
            .find(|(_, after)| after.name == node.name)
        else {
            changes
                .removed
                .push((*id, node.name.clone(), "nodes".to_string()));
            continue;
        };
        match moved_key(node, after) {
            None => changes.kept.push((*id, after.weight)),
            Some(key) => {
                changes
                    .removed
                    .push((*id, node.name.clone(), format!("nodes[{index}].{key}")))
            }
        }
    }
    for (index, after) in new.iter().enumerate() {
        let kept = current.iter().any(|(id, node)| {
            node.name == after.name && changes.kept.iter().any(|(kept, _)| kept == id)
        });
        if !kept {
            changes.added.push((index, after.clone()));
        }
    }
    changes
}

/// The first key saying `after` is reached another way than `before`.
fn moved_key(before: &NodeConfig, after: &NodeConfig) -> Option<&'static str> {
    [
        ("host", before.host == after.host),
        ("port", before.port == after.port),
        ("sslmode", before.sslmode == after.sslmode),
        ("sslrootcert", before.sslrootcert == after.sslrootcert),
    ]
    .into_iter()
    .find(|(_, same)| !same)
    .map(|(key, _)| key)
}

/// Why `changes` may not be applied to a proxy seeing `topology` with
/// `ids_left` ids free, if so.
pub(crate) fn refusal(
    changes: &NodeChanges,
    topology: &Topology,
    ids_left: usize,
) -> Option<String> {
    for (id, name, key) in &changes.removed {
        if topology
            .node(*id)
            .is_some_and(|node| node.role == Role::Primary)
        {
            let what = match key.as_str() {
                "nodes" => "removes".to_string(),
                key => format!("changes `{key}` of"),
            };
            return Some(format!(
                "`{key}`: the file {what} node {name:?}, which is the primary now; a reload never \
                 leaves the proxy without its primary: promote another node first (the monitor \
                 follows it), or restart the proxy"
            ));
        }
    }
    if changes.added.len() > ids_left {
        return Some(format!(
            "`nodes`: the file adds {} nodes, but only {ids_left} more can be added while the \
             proxy runs (node ids are never reused); restart the proxy to number them afresh",
            changes.added.len()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pgrw_core::route::{Health, Node};

    use super::*;

    fn node(name: &str, port: u16) -> NodeConfig {
        NodeConfig {
            name: name.to_string(),
            host: "127.0.0.1".to_string(),
            port,
            weight: 1,
            sslmode: Default::default(),
            sslrootcert: None,
        }
    }

    fn current(nodes: &[NodeConfig]) -> Vec<(NodeId, NodeConfig)> {
        nodes
            .iter()
            .enumerate()
            .map(|(index, node)| (NodeId(index as u16 * 2), node.clone()))
            .collect()
    }

    #[test]
    fn a_node_of_the_same_name_and_address_keeps_its_id_and_takes_its_new_weight() {
        let before = current(&[node("primary", 5432), node("replica1", 5433)]);
        let mut replica = node("replica1", 5433);
        replica.weight = 3;
        let changes = node_changes(&before, &[replica, node("primary", 5432)]);
        assert_eq!(changes.kept, vec![(NodeId(0), 1), (NodeId(2), 3)]);
        assert!(changes.removed.is_empty() && changes.added.is_empty());
    }

    #[test]
    fn a_node_gone_is_removed_and_a_new_name_is_added() {
        let before = current(&[node("primary", 5432), node("replica1", 5433)]);
        let changes = node_changes(&before, &[node("primary", 5432), node("replica2", 5434)]);
        assert_eq!(
            changes.removed,
            vec![(NodeId(2), "replica1".to_string(), "nodes".to_string())]
        );
        assert_eq!(changes.added, vec![(1, node("replica2", 5434))]);
    }

    #[test]
    fn a_node_reached_another_way_is_removed_and_added_again() {
        let before = current(&[node("primary", 5432), node("replica1", 5433)]);
        let changes = node_changes(&before, &[node("primary", 5432), node("replica1", 6000)]);
        assert_eq!(
            changes.removed,
            vec![(
                NodeId(2),
                "replica1".to_string(),
                "nodes[1].port".to_string()
            )]
        );
        assert_eq!(changes.added, vec![(1, node("replica1", 6000))]);
    }

    fn topology(roles: &[Role]) -> Topology {
        let nodes = roles
            .iter()
            .enumerate()
            .map(|(index, role)| Node {
                name: Arc::from(format!("n{index}")),
                role: *role,
                health: Health::Up,
                replay_lsn: pgrw_core::Lsn::INVALID,
                lag: Default::default(),
                weight: 1,
                answering: true,
                orphan: None,
            })
            .collect();
        Topology::new(nodes, pgrw_core::Lsn::INVALID)
    }

    #[test]
    fn removing_or_moving_the_primary_is_refused_with_the_key() {
        let before = current(&[node("primary", 5432), node("replica1", 5433)]);
        let topology = topology(&[Role::Primary, Role::Unknown, Role::Replica]);
        let removed = node_changes(&before, &[node("replica1", 5433)]);
        let why = refusal(&removed, &topology, 64).expect("refused");
        assert!(
            why.starts_with("`nodes`:") && why.contains("primary"),
            "{why}"
        );
        let moved = node_changes(&before, &[node("primary", 5440), node("replica1", 5433)]);
        let why = refusal(&moved, &topology, 64).expect("refused");
        assert!(why.starts_with("`nodes[0].port`:"), "{why}");
        let replica_gone = node_changes(&before, &[node("primary", 5432)]);
        assert_eq!(refusal(&replica_gone, &topology, 64), None);
    }

    #[test]
    fn adding_past_the_ids_left_is_refused() {
        let before = current(&[node("primary", 5432)]);
        let changes = node_changes(&before, &[node("primary", 5432), node("replica1", 5433)]);
        let topology = topology(&[Role::Primary]);
        assert!(refusal(&changes, &topology, 0).is_some());
        assert_eq!(refusal(&changes, &topology, 1), None);
    }
}
