//! The one error type of the store, with messages an operator can act on.

/// Everything that can go wrong talking to the store.
///
/// Callers on a decision path treat every variant as a deny: the store never
/// answers "probably fine".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL is not one this crate understands.
    #[error("unsupported database URL {url:?}: use sqlite://PATH or postgres://USER@HOST:PORT/DB")]
    UnsupportedUrl {
        /// The URL, with any password removed.
        url: String,
    },
    /// The database could not be opened or reached.
    #[error("database unreachable at {url}: {source}")]
    Unreachable {
        /// The URL, with any password removed.
        url: String,
        /// What the driver reported.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the embedded migrations failed.
    #[error(
        "applying database migrations failed (is this database used by a newer Remit?): {source}"
    )]
    Migration {
        /// What the migrator reported.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed for a reason other than the domain errors below.
    #[error("database error while trying to {action}: {source}")]
    Query {
        /// What the store was doing, in words ("register an agent").
        action: &'static str,
        /// What the driver reported.
        #[source]
        source: sqlx::Error,
    },
    /// Something with this identity already exists.
    #[error("{what} {id:?} already exists")]
    Duplicate {
        /// The kind of object ("agent", "tool", ...).
        what: &'static str,
        /// Its identifier.
        id: String,
    },
    /// Nothing with this identity exists.
    #[error("no {what} {id:?} is known to this store")]
    NotFound {
        /// The kind of object ("agent", "remit", ...).
        what: &'static str,
        /// The identifier that was looked up.
        id: String,
    },
    /// An input is not acceptable as an identifier or value.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// The kind of value.
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The remit has used every step it was granted.
    #[error("remit {jti:?} has used all {max} of its steps; issue a new remit to continue")]
    StepsExhausted {
        /// The remit's id.
        jti: String,
        /// Its step limit.
        max: i64,
    },
    /// Spending this much risk would exceed the agent's budget for the window.
    #[error("agent {agent:?} would exceed its risk budget: {spent} spent + {requested} requested > {limit} allowed in this window")]
    RiskBudgetExhausted {
        /// The agent.
        agent: String,
        /// Risk already spent in the window.
        spent: i64,
        /// Risk this call asked for.
        requested: i64,
        /// The window's limit.
        limit: i64,
    },
    /// The approval was already decided, so it cannot be decided again.
    #[error("approval {id:?} is already {state}; a decision is final")]
    ApprovalAlreadyDecided {
        /// The approval.
        id: String,
        /// Its current state.
        state: String,
    },
    /// The approval cannot release this call.
    #[error("approval {id:?} cannot release this call: {reason}")]
    ApprovalNotUsable {
        /// The approval.
        id: String,
        /// Why (not approved, already used, expired, different call).
        reason: &'static str,
    },
    /// A checkpoint for this log size exists with different text.
    #[error(
        "a different checkpoint for log size {size} is already stored; refusing to replace it"
    )]
    ConflictingCheckpoint {
        /// The log size.
        size: u64,
    },
    /// A stored value does not parse: the database was edited by hand or is
    /// from an incompatible version.
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

impl StoreError {
    /// Wraps a driver error met while doing `action`.
    pub(crate) fn query(action: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Query { action, source }
    }

    /// Maps a unique-constraint violation to [`StoreError::Duplicate`] and any
    /// other error to [`StoreError::Query`].
    pub(crate) fn unique<'a>(
        action: &'static str,
        what: &'static str,
        id: &'a str,
    ) -> impl FnOnce(sqlx::Error) -> Self + 'a {
        move |source| {
            if is_unique_violation(&source) {
                Self::Duplicate {
                    what,
                    id: id.to_owned(),
                }
            } else {
                Self::Query { action, source }
            }
        }
    }
}

/// True when the driver reports a unique or primary-key violation.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// True when the driver reports a foreign-key violation.
pub(crate) fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

/// Removes the password from a database URL so it can be shown in errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn password_never_appears_in_a_redacted_url() {
        let shown = redact_url("postgres://remit:hunter2@db.internal:5432/remit");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(shown, "postgres://remit:***@db.internal:5432/remit");
    }

    #[test]
    fn url_without_password_is_unchanged() {
        let url = "postgres://postgres@127.0.0.1:5432/test";
        assert_eq!(redact_url(url), url);
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
