//! Session effects: what a statement changes in its backend's session state,
//! so the driver (proxy or library) can keep the client on that backend or
//! replay the change elsewhere.

use std::fmt;

/// One kind of session-state change. Combine them in [`SessionEffects`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Effect(u32);

macro_rules! effects {
    ($($(#[$doc:meta])* $name:ident = $bit:expr, $label:expr;)*) => {
        impl Effect {
            $($(#[$doc])* pub const $name: Effect = Effect(1 << $bit);)*

            /// Every effect, in declaration order.
            pub const ALL: &'static [Effect] = &[$(Effect::$name),*];

            /// A short human-readable name (`"SET LOCAL"`, `"session advisory lock"`).
            pub fn label(self) -> &'static str {
                match self {
                    $(Effect::$name => $label,)*
                    _ => "unknown effect",
                }
            }
        }
    };
}

effects! {
    /// `SET` / `SET SESSION` of a setting (or `SET ROLE`, `SET TIME ZONE`, …).
    SET = 0, "SET";
    /// `SET LOCAL` or `SET CONSTRAINTS`: lasts until the end of the transaction.
    SET_LOCAL = 1, "SET LOCAL";
    /// `RESET name`.
    RESET = 2, "RESET";
    /// `RESET ALL`.
    RESET_ALL = 3, "RESET ALL";
    /// `DISCARD ALL`: resets every kind of session state.
    DISCARD_ALL = 4, "DISCARD ALL";
    /// `DISCARD PLANS`.
    DISCARD_PLANS = 5, "DISCARD PLANS";
    /// `DISCARD SEQUENCES`.
    DISCARD_SEQUENCES = 6, "DISCARD SEQUENCES";
    /// `DISCARD TEMP`.
    DISCARD_TEMP = 7, "DISCARD TEMP";
    /// `set_config(name, value, false)` (or with an `is_local` we cannot read).
    SET_CONFIG = 8, "set_config";
    /// SQL-level `PREPARE name AS …`.
    PREPARE = 9, "PREPARE";
    /// SQL-level `EXECUTE name`: needs the backend that prepared it.
    EXECUTE = 10, "EXECUTE";
    /// `DEALLOCATE name`.
    DEALLOCATE = 11, "DEALLOCATE";
    /// `DEALLOCATE ALL`.
    DEALLOCATE_ALL = 12, "DEALLOCATE ALL";
    /// `LISTEN channel`.
    LISTEN = 13, "LISTEN";
    /// `UNLISTEN channel` or `UNLISTEN *`.
    UNLISTEN = 14, "UNLISTEN";
    /// Creates a temporary table, view or sequence.
    TEMP_TABLE = 15, "temp table";
    /// Takes a session-level advisory lock (`pg_advisory_lock`, `pg_try_advisory_lock`, …).
    ADVISORY_LOCK = 16, "session advisory lock";
    /// Takes a transaction-level advisory lock (`pg_advisory_xact_lock`, …).
    ADVISORY_XACT_LOCK = 17, "transaction advisory lock";
    /// Releases session advisory locks (`pg_advisory_unlock`, `pg_advisory_unlock_all`).
    ADVISORY_UNLOCK = 18, "advisory unlock";
    /// `DECLARE … CURSOR`.
    DECLARE_CURSOR = 19, "DECLARE CURSOR";
    /// `DECLARE … CURSOR WITH HOLD`: the cursor outlives its transaction.
    HOLD_CURSOR = 20, "WITH HOLD cursor";
    /// `FETCH` / `MOVE`: needs the backend holding the cursor.
    CURSOR_USE = 21, "cursor use";
    /// `CLOSE cursor` / `CLOSE ALL`.
    CLOSE_CURSOR = 22, "CLOSE";
    /// `nextval`, `setval`, `currval`, `lastval`: `currval`/`lastval` read
    /// per-session sequence state.
    SEQUENCE = 23, "sequence state";
    /// Transaction control inside a multi-statement string: the driver must
    /// take the transaction state from the server's ReadyForQuery status.
    TRANSACTION_CONTROL = 24, "transaction control";
    /// A function that changes session state (`setseed`, `dblink_connect`, …).
    SESSION_FUNCTION = 25, "session function";
    /// `DROP …`: may drop a temporary table, ending what pinned the session
    /// (the driver asks its backend whether any remain).
    DROP = 26, "DROP";
    /// `CREATE UNLOGGED …` or `SELECT … INTO UNLOGGED`: a relation only the
    /// primary can read. `CREATE UNLOGGED TABLE … AS` and `SELECT … INTO`
    /// answer `SELECT n`, not a `CREATE` tag, so the driver learns it from this.
    UNLOGGED_RELATION = 27, "unlogged relation";
}

/// Which effects pin a client to the backend that ran them (a later statement
/// must run on that same backend, so the session cannot move between nodes).
const PINNING: u32 = Effect::TEMP_TABLE.0
    | Effect::ADVISORY_LOCK.0
    | Effect::LISTEN.0
    | Effect::HOLD_CURSOR.0
    | Effect::PREPARE.0
    | Effect::SESSION_FUNCTION.0;

/// `SET pgrw.route = …`: the session's routing override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteSetting {
    /// Everything to the primary.
    Primary,
    /// Everything that is not a definite write to a replica.
    Replica,
    /// Back to classification (also what `RESET pgrw.route`, `RESET ALL` and `DISCARD ALL` do).
    Auto,
}

/// A change of the `pgrw.route` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteSettingChange {
    /// The new value.
    pub setting: RouteSetting,
    /// `SET LOCAL`: only until the end of the current transaction.
    pub local: bool,
}

/// A change of the session's default transaction isolation
/// (`default_transaction_isolation`, `SET SESSION CHARACTERISTICS`): a hot
/// standby refuses serializable transactions, so a session whose default is
/// serializable reads on the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DefaultIsolation {
    /// Serializable from now on (or a value pgrw cannot read: unsure, the primary).
    Serializable,
    /// Repeatable read from now on: a transaction keeps one snapshot, which
    /// reads on a replica and writes on the primary could not share.
    RepeatableRead,
    /// Read committed (or read uncommitted, which PostgreSQL runs as it) from now on.
    Other,
    /// Back to what the login gave (`RESET`, `RESET ALL`, `DISCARD ALL`,
    /// `SET … TO DEFAULT`): startup options, `ALTER ROLE/DATABASE … SET`.
    LoginDefault,
}

impl DefaultIsolation {
    /// The level a `default_transaction_isolation` value names (as a startup
    /// option or a role's or database's setting gives it); a value pgrw
    /// cannot read counts as serializable.
    pub fn of_setting(value: &str) -> DefaultIsolation {
        let value = value.trim();
        if value.eq_ignore_ascii_case("repeatable read") {
            DefaultIsolation::RepeatableRead
        } else if value.eq_ignore_ascii_case("read committed")
            || value.eq_ignore_ascii_case("read uncommitted")
        {
            DefaultIsolation::Other
        } else {
            DefaultIsolation::Serializable
        }
    }
}

/// The session effects of a statement (or of a whole query string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SessionEffects {
    bits: u32,
    /// A change of `pgrw.route`, if the statement makes one (the last one wins).
    pub route_setting: Option<RouteSettingChange>,
    /// A change of the session's default isolation, if the statement makes
    /// one (the last one wins). `SET LOCAL` makes none: it ends with its
    /// transaction, which runs on one node.
    pub default_isolation: Option<DefaultIsolation>,
}

impl SessionEffects {
    /// No effects.
    pub const NONE: SessionEffects = SessionEffects {
        bits: 0,
        route_setting: None,
        default_isolation: None,
    };

    /// Whether `effect` is among these.
    pub fn contains(&self, effect: Effect) -> bool {
        self.bits & effect.0 == effect.0
    }

    /// Adds `effect`.
    pub fn insert(&mut self, effect: Effect) {
        self.bits |= effect.0;
    }

    /// Takes `effect` out.
    pub fn remove(&mut self, effect: Effect) {
        self.bits &= !effect.0;
    }

    /// No effect at all (and no `pgrw.route` change).
    pub fn is_empty(&self) -> bool {
        self.bits == 0 && self.route_setting.is_none() && self.default_isolation.is_none()
    }

    /// Whether the client must stay on the backend that ran the statement:
    /// temp tables, session advisory locks, LISTEN, WITH HOLD cursors, SQL-level
    /// prepared statements, session functions. (Settings are not pinning: the
    /// driver can replay them on another backend.)
    pub fn pins_session(&self) -> bool {
        self.bits & PINNING != 0
    }

    /// The first of these effects that pins the session, if any.
    pub fn pinning(&self) -> Option<Effect> {
        self.iter().find(|effect| effect.0 & PINNING != 0)
    }

    /// The effects of both.
    pub fn union(self, other: SessionEffects) -> SessionEffects {
        SessionEffects {
            bits: self.bits | other.bits,
            route_setting: other.route_setting.or(self.route_setting),
            default_isolation: other.default_isolation.or(self.default_isolation),
        }
    }

    /// The individual effects, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = Effect> + '_ {
        Effect::ALL
            .iter()
            .copied()
            .filter(|effect| self.contains(*effect))
    }
}

impl From<Effect> for SessionEffects {
    fn from(effect: Effect) -> Self {
        SessionEffects {
            bits: effect.0,
            route_setting: None,
            default_isolation: None,
        }
    }
}

impl fmt::Display for SessionEffects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for effect in self.iter() {
            if !first {
                f.write_str(", ")?;
            }
            f.write_str(effect.label())?;
            first = false;
        }
        if let Some(change) = self.route_setting {
            if !first {
                f.write_str(", ")?;
            }
            write!(
                f,
                "pgrw.route = {:?}{}",
                change.setting,
                if change.local { " (local)" } else { "" }
            )?;
            first = false;
        }
        if let Some(isolation) = self.default_isolation {
            if !first {
                f.write_str(", ")?;
            }
            write!(f, "default isolation: {isolation:?}")?;
        }
        Ok(())
    }
}
