//! The open-file limit. The proxy holds a descriptor per client connection
//! and per backend connection; a soft limit of 1024 (a common default) would
//! stop it far below `max_client_connections`. At startup the command raises
//! the soft limit to the hard one, as many servers do, and warns when even
//! that is below what the configuration may need.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::config::ProxyConfig;
use crate::pool;

/// Descriptors besides clients and backends: the listener, monitor
/// connections, the runtime's own, logs.
const SPARE_DESCRIPTORS: u64 = 64;

/// The most descriptors `config` may need at once: every client it accepts,
/// every pool full (one database per user; a pool smaller than `workers`
/// holds one connection per worker), and spares.
pub fn descriptors_needed(config: &ProxyConfig) -> u64 {
    let pools = (config.nodes.len() * config.users.len()) as u64;
    let per_pool = pool::connections_at_most(config.pool.size, config.workers) as u64;
    config
        .max_client_connections
        .saturating_add(pools.saturating_mul(per_pool))
        .saturating_add(SPARE_DESCRIPTORS)
}

/// Raises this process's soft open-file limit to its hard limit; a warning
/// to print when the limit is still below what `config` may need, or could
/// not be read.
pub fn raise_open_file_limit(config: &ProxyConfig) -> Option<String> {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(error) => return Some(format!("reading the open-file limit: {error}")),
    };
    let limit = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    let needed = descriptors_needed(config);
    (limit < needed).then(|| {
        format!(
            "the open-file limit is {limit}, below the {needed} descriptors that \
             max_client_connections ({}) and full pools may need: raise it (ulimit -n, \
             LimitNOFILE= in a systemd unit) or lower max_client_connections",
            config.max_client_connections
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_need_counts_clients_full_pools_and_spares() {
        let config = ProxyConfig::from_toml(
            "test.toml",
            "max_client_connections = 100\n\
             [[nodes]]\nname = \"a\"\nport = 1\n[[nodes]]\nname = \"b\"\nport = 2\n\
             [[users]]\nname = \"u\"\npassword = \"p\"\n[pool]\nsize = 7\n",
        )
        .unwrap();
        assert_eq!(descriptors_needed(&config), 100 + 2 * 7 + SPARE_DESCRIPTORS);
    }

    #[test]
    fn a_pool_smaller_than_the_workers_counts_one_connection_per_worker() {
        let config = ProxyConfig::from_toml(
            "test.toml",
            "max_client_connections = 100\nworkers = 4\n\
             [[nodes]]\nname = \"a\"\nport = 1\n\
             [[users]]\nname = \"u\"\npassword = \"p\"\n[pool]\nsize = 2\n",
        )
        .unwrap();
        assert_eq!(descriptors_needed(&config), 100 + 4 + SPARE_DESCRIPTORS);
    }

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let config = ProxyConfig::from_toml(
            "test.toml",
            "max_client_connections = 1\n[[nodes]]\nname = \"a\"\nport = 1\n\
             [[users]]\nname = \"u\"\npassword = \"p\"\n",
        )
        .unwrap();
        assert_eq!(
            raise_open_file_limit(&config),
            None,
            "a limit of 1 client fits"
        );
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(soft, hard);
    }
}
