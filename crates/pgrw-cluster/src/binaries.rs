//! Finding the PostgreSQL server programs on this machine.

use std::path::{Path, PathBuf};

use crate::error::{ClusterError, Result};

/// The programs a cluster needs from a PostgreSQL installation.
pub const REQUIRED_PROGRAMS: [&str; 4] = ["initdb", "pg_ctl", "pg_basebackup", "postgres"];

/// The environment variable naming the PostgreSQL binary directory.
pub const PG_BIN_ENV: &str = "PGRW_PG_BIN";

const INSTALL_HINT: &str = "install the PostgreSQL server (Debian/Ubuntu: `apt-get install postgresql`; \
     Fedora: `dnf install postgresql-server`; macOS: `brew install postgresql`), \
     or point pgrw at its bin directory with --pg-bin DIR or PGRW_PG_BIN=DIR";

/// A directory holding initdb, pg_ctl, pg_basebackup and postgres.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    dir: PathBuf,
}

impl PgBinaries {
    /// Finds the binaries: `explicit` if given, then `$PGRW_PG_BIN`, then
    /// `pg_config --bindir`, then the newest `/usr/lib/postgresql/<ver>/bin`, then `PATH`.
    ///
    /// An explicit directory or `PGRW_PG_BIN` that lacks a program is an error,
    /// never a silent fall back to another installation.
    pub fn locate(explicit: Option<&Path>) -> Result<Self> {
        if let Some(dir) = explicit {
            return Self::at(dir, "--pg-bin");
        }
        if let Some(dir) = std::env::var_os(PG_BIN_ENV).filter(|value| !value.is_empty()) {
            return Self::at(Path::new(&dir), PG_BIN_ENV);
        }
        let candidates = pg_config_bindir()
            .into_iter()
            .chain(newest_debian_bindir())
            .chain(path_dir_with("pg_ctl"));
        for dir in candidates {
            if missing_programs(&dir).is_empty() {
                return Ok(PgBinaries { dir });
            }
        }
        Err(ClusterError::BinariesNotFound(format!(
            "PostgreSQL server binaries ({}) not found via pg_config, /usr/lib/postgresql/*/bin or PATH: {INSTALL_HINT}",
            REQUIRED_PROGRAMS.join(", ")
        )))
    }

    /// Uses `dir` as the binary directory, checking that every program is there.
    pub fn at(dir: &Path, origin: &str) -> Result<Self> {
        let missing = missing_programs(dir);
        if missing.is_empty() {
            return Ok(PgBinaries {
                dir: dir.to_path_buf(),
            });
        }
        Err(ClusterError::BinariesNotFound(format!(
            "{} (from {origin}) lacks {}: {INSTALL_HINT}",
            dir.display(),
            missing.join(", ")
        )))
    }

    /// The binary directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The full path of one program in the directory.
    pub fn program(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn missing_programs(dir: &Path) -> Vec<&'static str> {
    REQUIRED_PROGRAMS
        .into_iter()
        .filter(|program| !is_executable(&dir.join(program)))
        .collect()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn pg_config_bindir() -> Option<PathBuf> {
    let output = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = String::from_utf8(output.stdout).ok()?;
    let dir = dir.trim();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// Debian and Ubuntu install each major version side by side; the newest wins.
fn newest_debian_bindir() -> Option<PathBuf> {
    let versions = std::fs::read_dir("/usr/lib/postgresql").ok()?;
    versions
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: f64 = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, bin)| bin)
}

fn path_dir_with(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| is_executable(&dir.join(program)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_the_programs_is_refused_with_install_advice() {
        let empty = tempfile::tempdir().expect("temp dir");
        let error = PgBinaries::at(empty.path(), "--pg-bin").expect_err("empty dir accepted");
        let message = error.to_string();
        assert!(
            message.contains("lacks initdb, pg_ctl, pg_basebackup, postgres"),
            "{message}"
        );
        assert!(message.contains("apt-get install postgresql"), "{message}");
    }
}
