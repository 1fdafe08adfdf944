//! Which failures a retry can fix. A FIFO group does not move while its head is retried,
//! so a failure that no retry can fix (a constraint or data error, an out-of-range value,
//! a malformed body) must end its item at once and let the group go on; only failures of
//! the moment (the network, a database that is down or busy, a pool that timed out, a
//! transaction rolled back by a serialization failure or deadlock) are worth the queue's
//! retries.
//!
//! Database errors are permanent unless known to be transient: a new kind of error (sqlx's
//! error is non-exhaustive) fails its item once rather than blocking a group for hours.

/// Whether a database error may go away by trying again.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        // The connection: broken, refused, not negotiated, or garbled mid-stream.
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        // The pool: every connection busy, or closing (an instance shutting down).
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| transient_sqlstate(&code)),
        _ => false,
    }
}

/// SQLSTATE classes that describe the server's state, not the statement: 08 connection
/// exception, 40 transaction rollback (serialization failure, deadlock), 53 insufficient
/// resources, 57 operator intervention (admin shutdown, crash shutdown, cannot connect
/// now; except 57014, a statement canceled by its timeout, which would time out again),
/// 58 system error. Everything else (22 data exception, 23 integrity constraint, 42
/// syntax or access rule, ...) fails the same way every time.
fn transient_sqlstate(code: &str) -> bool {
    if code == "57014" {
        return false;
    }
    matches!(code.get(..2), Some("08" | "40" | "53" | "57" | "58"))
}

/// Whether the server ended the connection's session (SQLSTATE 57P01 admin shutdown,
/// 57P02 crash shutdown, 57P03 cannot connect now): the statement that met it took no
/// effect, and a new connection may work at once (the server restarted while the
/// connection sat idle between statements).
pub fn is_session_ended(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Database(db)
            if matches!(db.code().as_deref(), Some("57P01" | "57P02" | "57P03"))
    )
}

/// The first database error in an error's chain, if any.
pub fn database_error(error: &anyhow::Error) -> Option<&sqlx::Error> {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<sqlx::Error>())
}

/// Whether a handler's retryable error is worth a retry: it is, unless it is (or was
/// caused by) a database error that is not transient.
pub fn is_retryable(error: &anyhow::Error) -> bool {
    database_error(error).is_none_or(is_transient)
}

/// A database error told for a person: what kind of thing went wrong, never the SQL,
/// relation or constraint names (those go to `stack`, which only admins see).
pub fn describe_database_error(error: &sqlx::Error) -> &'static str {
    let class = match error {
        sqlx::Error::Database(db) => db.code().map(|c| c.get(..2).unwrap_or("").to_owned()),
        _ => None,
    };
    match class.as_deref() {
        Some("22") => "the item's data is outside what can be stored",
        Some("23") => "the item's result was refused as inconsistent with the stored data",
        _ if is_transient(error) => "the database was unavailable",
        _ => "the database refused the item's work",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstate_classes() {
        for code in [
            "08006", "08001", "40001", "40P01", "53300", "57P01", "57P03", "58030",
        ] {
            assert!(transient_sqlstate(code), "{code}");
        }
        for code in [
            "22008", "22P02", "23505", "23514", "42601", "42P01", "57014", "XX000",
        ] {
            assert!(!transient_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn error_kinds() {
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(is_transient(&sqlx::Error::PoolClosed));
        assert!(is_transient(&sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset
        ))));
        assert!(!is_transient(&sqlx::Error::RowNotFound));
        assert!(!is_transient(&sqlx::Error::ColumnNotFound("x".into())));
        assert!(is_retryable(&anyhow::anyhow!("Chatwork answered 503")));
        assert!(is_retryable(
            &anyhow::Error::new(sqlx::Error::PoolTimedOut).context("loading rooms")
        ));
        assert!(!is_retryable(
            &anyhow::Error::new(sqlx::Error::RowNotFound).context("loading rooms")
        ));
    }
}
