//! Who may come in, and how many: the budget of connections that have not
//! logged in yet, clients per user and per database, and the brakes on an
//! address whose logins keep failing (docs/security.md).
//!
//! Counts are RAII guards: a connection holds its [`PendingLogin`] until it
//! has logged in or left, and its [`Admitted`] while it is logged in. Time
//! is passed in, so the throttle is a plain function of its inputs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{LimitsConfig, UserConfig};

/// How many addresses' failures are remembered at most: past it, expired
/// entries are dropped first, then the new address goes unrecorded, so
/// that an attacker rotating addresses cannot grow the map without bound.
const MAX_FAILING_ADDRESSES: usize = 65_536;

/// The proxy's admission counters and failed-login memory.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    pending: Arc<AtomicU64>,
    per_user: Arc<Mutex<HashMap<String, u64>>>,
    per_database: Arc<Mutex<HashMap<String, u64>>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

/// One address's failed logins in a row.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u64,
    last: Instant,
}

/// A connection that has not logged in yet, counted while it lives.
#[derive(Debug)]
pub(crate) struct PendingLogin(Arc<AtomicU64>);

impl Drop for PendingLogin {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A logged-in client, counted against its user and database while it lives.
#[derive(Debug)]
pub(crate) struct Admitted {
    user: String,
    database: String,
    per_user: Arc<Mutex<HashMap<String, u64>>>,
    per_database: Arc<Mutex<HashMap<String, u64>>>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        for (counts, key) in [
            (&self.per_user, &self.user),
            (&self.per_database, &self.database),
        ] {
            if let Ok(mut counts) = counts.lock()
                && let Some(count) = counts.get_mut(key)
            {
                *count -= 1;
                if *count == 0 {
                    counts.remove(key);
                }
            }
        }
    }
}

/// Why a logged-in client may not stay: the limit it is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OverLimit {
    /// `[[users]] max_connections`.
    User(u64),
    /// `limits.max_connections_per_database`.
    Database(u64),
}

/// What to do with a login from an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throttle {
    /// Go on.
    Open,
    /// Refuse it at once: the address failed too often; it may try again
    /// after this long.
    Refuse(Duration),
}

impl Admission {
    /// Counts a new connection as pending, unless `max` already are:
    /// `None` then (the caller refuses it).
    pub(crate) fn begin_login(&self, max: u64) -> Option<PendingLogin> {
        let before = self.pending.fetch_add(1, Ordering::AcqRel);
        let guard = PendingLogin(self.pending.clone());
        (before < max).then_some(guard)
    }

    /// Counts a client that logged in as `user` to `database`, unless that
    /// would exceed the user's or the database's limit.
    pub(crate) fn admit(
        &self,
        user: &UserConfig,
        database: &str,
        limits: &LimitsConfig,
    ) -> Result<Admitted, OverLimit> {
        let user_max = user.max_connections.filter(|&max| max > 0);
        let database_max = Some(limits.max_connections_per_database).filter(|&max| max > 0);
        // One lock order (user, then database): two logins cannot deadlock.
        let mut per_user = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        let mut per_database = self.per_database.lock().unwrap_or_else(|e| e.into_inner());
        let users = per_user.get(&user.name).copied().unwrap_or(0);
        let databases = per_database.get(database).copied().unwrap_or(0);
        if let Some(max) = user_max.filter(|&max| users >= max) {
            return Err(OverLimit::User(max));
        }
        if let Some(max) = database_max.filter(|&max| databases >= max) {
            return Err(OverLimit::Database(max));
        }
        *per_user.entry(user.name.clone()).or_default() += 1;
        *per_database.entry(database.to_string()).or_default() += 1;
        Ok(Admitted {
            user: user.name.clone(),
            database: database.to_string(),
            per_user: self.per_user.clone(),
            per_database: self.per_database.clone(),
        })
    }

    /// Whether a login from `address` may go on at `now`.
    pub(crate) fn throttle(
        &self,
        address: IpAddr,
        now: Instant,
        limits: &LimitsConfig,
    ) -> Throttle {
        let Ok(failures) = self.failures.lock() else {
            return Throttle::Open;
        };
        let window = Duration::from_millis(limits.failed_login_window_ms);
        match failures.get(&address) {
            Some(record)
                if limits.max_failed_logins > 0
                    && record.count >= limits.max_failed_logins
                    && now.saturating_duration_since(record.last) < window =>
            {
                Throttle::Refuse(window - now.saturating_duration_since(record.last))
            }
            _ => Throttle::Open,
        }
    }

    /// Records a failed login from `address` at `now`; returns how long to
    /// hold back the answer: `failed_login_delay_ms`, doubled for each
    /// earlier failure in the window, at most `failed_login_delay_max_ms`.
    pub(crate) fn failed(&self, address: IpAddr, now: Instant, limits: &LimitsConfig) -> Duration {
        let window = Duration::from_millis(limits.failed_login_window_ms);
        let count = match self.failures.lock() {
            Ok(mut failures) => {
                if failures.len() >= MAX_FAILING_ADDRESSES && !failures.contains_key(&address) {
                    failures
                        .retain(|_, record| now.saturating_duration_since(record.last) < window);
                }
                let fresh = Failures {
                    count: 0,
                    last: now,
                };
                let previous = failures
                    .get(&address)
                    .copied()
                    .filter(|record| now.saturating_duration_since(record.last) < window);
                let record = Failures {
                    count: previous.unwrap_or(fresh).count + 1,
                    last: now,
                };
                if failures.len() < MAX_FAILING_ADDRESSES || failures.contains_key(&address) {
                    failures.insert(address, record);
                }
                record.count
            }
            Err(_) => 1,
        };
        failure_delay(count, limits)
    }

    /// Forgets `address`'s failures after it logged in.
    pub(crate) fn succeeded(&self, address: IpAddr) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&address);
        }
    }
}

/// The delay for the `count`th failure in a row (1-based).
fn failure_delay(count: u64, limits: &LimitsConfig) -> Duration {
    let doublings = u32::try_from(count.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(32);
    let delay = limits
        .failed_login_delay_ms
        .saturating_mul(1u64 << doublings);
    Duration::from_millis(delay.min(limits.failed_login_delay_max_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LimitsConfig {
        LimitsConfig {
            failed_login_delay_ms: 100,
            failed_login_delay_max_ms: 1000,
            max_failed_logins: 3,
            failed_login_window_ms: 60_000,
            max_connections_per_database: 2,
            ..LimitsConfig::default()
        }
    }

    const ADDRESS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn failed_login_delays_double_up_to_the_maximum() {
        let admission = Admission::default();
        let now = Instant::now();
        let delays: Vec<_> = (0..6)
            .map(|_| admission.failed(ADDRESS, now, &limits()).as_millis())
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn an_address_over_its_failures_is_refused_until_the_window_passes() {
        let admission = Admission::default();
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(admission.throttle(ADDRESS, now, &limits()), Throttle::Open);
            admission.failed(ADDRESS, now, &limits());
        }
        assert!(matches!(
            admission.throttle(ADDRESS, now, &limits()),
            Throttle::Refuse(_)
        ));
        assert_eq!(admission.throttle(OTHER, now, &limits()), Throttle::Open);
        let later = now + Duration::from_millis(60_000);
        assert_eq!(
            admission.throttle(ADDRESS, later, &limits()),
            Throttle::Open
        );
        assert_eq!(
            admission.failed(ADDRESS, later, &limits()).as_millis(),
            100,
            "failures past the window are forgotten"
        );
    }

    #[test]
    fn a_successful_login_forgets_the_failures() {
        let admission = Admission::default();
        let now = Instant::now();
        for _ in 0..3 {
            admission.failed(ADDRESS, now, &limits());
        }
        admission.succeeded(ADDRESS);
        assert_eq!(admission.throttle(ADDRESS, now, &limits()), Throttle::Open);
    }

    #[test]
    fn pending_logins_are_counted_until_their_guards_drop() {
        let admission = Admission::default();
        let first = admission.begin_login(2);
        let second = admission.begin_login(2);
        assert!(first.is_some() && second.is_some());
        assert!(admission.begin_login(2).is_none(), "a third is over");
        drop(first);
        assert!(admission.begin_login(2).is_some());
    }

    fn user(max: Option<u64>) -> UserConfig {
        UserConfig {
            name: "app".into(),
            password: String::new(),
            password_file: None,
            password_env: None,
            auth: Default::default(),
            max_connections: max,
            admin: false,
        }
    }

    #[test]
    fn a_user_over_its_max_connections_is_refused_until_one_leaves() {
        let admission = Admission::default();
        let limits = LimitsConfig::default();
        let first = admission.admit(&user(Some(1)), "a", &limits).unwrap();
        assert_eq!(
            admission.admit(&user(Some(1)), "b", &limits).unwrap_err(),
            OverLimit::User(1)
        );
        drop(first);
        assert!(admission.admit(&user(Some(1)), "b", &limits).is_ok());
    }

    #[test]
    fn a_database_over_its_limit_is_refused_whatever_the_user() {
        let admission = Admission::default();
        let _one = admission.admit(&user(None), "db", &limits()).unwrap();
        let _two = admission.admit(&user(None), "db", &limits()).unwrap();
        assert_eq!(
            admission.admit(&user(None), "db", &limits()).unwrap_err(),
            OverLimit::Database(2)
        );
        assert!(admission.admit(&user(None), "other", &limits()).is_ok());
    }
}
