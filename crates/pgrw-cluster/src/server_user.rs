//! Who the PostgreSQL servers run as.
//!
//! PostgreSQL refuses to run as root. When pgrw itself runs as root (containers,
//! CI), every PostgreSQL program runs as the unprivileged `postgres` user, which
//! then has to own the cluster directory and reach it through its ancestors.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::unistd::{Gid, Uid, User, chown};

use crate::error::{ClusterError, Result};

/// The account the servers are started as when pgrw runs as root.
pub const UNPRIVILEGED_USER: &str = "postgres";

/// The identity PostgreSQL programs are run with.
#[derive(Debug, Clone)]
pub struct ServerUser {
    /// `Some` when running as root and switching to another user.
    switch_to: Option<(Uid, Gid)>,
}

impl ServerUser {
    /// The current user, or the `postgres` user when the effective uid is 0.
    pub fn detect() -> Result<Self> {
        if !Uid::effective().is_root() {
            return Ok(ServerUser { switch_to: None });
        }
        let user = User::from_name(UNPRIVILEGED_USER)
            .map_err(|errno| ClusterError::ServerUser(format!("looking up user {UNPRIVILEGED_USER}: {errno}")))?
            .ok_or_else(|| {
                ClusterError::ServerUser(format!(
                    "PostgreSQL refuses to run as root and there is no `{UNPRIVILEGED_USER}` user to run it as: \
                     create one (`useradd --system {UNPRIVILEGED_USER}`; installing the postgresql package does) \
                     or run pgrw as an ordinary user"
                ))
            })?;
        Ok(ServerUser {
            switch_to: Some((user.uid, user.gid)),
        })
    }

    /// Makes `command` run as the server user.
    pub fn apply(&self, command: &mut tokio::process::Command) {
        if let Some((uid, gid)) = self.switch_to {
            command.uid(uid.as_raw()).gid(gid.as_raw());
        }
    }

    /// Gives `path` (not its contents) to the server user.
    pub fn own(&self, path: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.switch_to {
            chown(path, Some(uid), Some(gid)).map_err(|errno| {
                ClusterError::io(
                    format!("giving {} to user {UNPRIVILEGED_USER}", path.display()),
                    errno.into(),
                )
            })?;
        }
        Ok(())
    }

    /// Checks that the server user can traverse every directory leading to `dir`.
    ///
    /// pgrw does not loosen permissions of directories it did not create; the
    /// error says which directory blocks the server and how to fix it.
    pub fn ensure_reachable(&self, dir: &Path) -> Result<()> {
        let Some((uid, gid)) = self.switch_to else {
            return Ok(());
        };
        let absolute = std::path::absolute(dir)
            .map_err(|error| ClusterError::io(format!("resolving {}", dir.display()), error))?;
        for ancestor in absolute.ancestors().skip(1) {
            let meta = std::fs::metadata(ancestor).map_err(|error| {
                ClusterError::io(format!("reading {}", ancestor.display()), error)
            })?;
            let mode = meta.permissions().mode();
            let traversable = (meta.uid() == uid.as_raw() && mode & 0o100 != 0)
                || (meta.gid() == gid.as_raw() && mode & 0o010 != 0)
                || mode & 0o001 != 0;
            if !traversable {
                return Err(ClusterError::ServerUser(format!(
                    "running as root, so PostgreSQL runs as user `{UNPRIVILEGED_USER}`, which cannot reach {} \
                     because {} is not traversable by it: choose a directory under /tmp, or run `chmod o+x {}`",
                    dir.display(),
                    ancestor.display(),
                    ancestor.display()
                )));
            }
        }
        Ok(())
    }
}
