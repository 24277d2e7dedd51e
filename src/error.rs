//! The one error type of the crate. Each variant says what went wrong in words a
//! caller can act on; `http::error` turns it into a status and a `text/plain` body,
//! the CLI prints it.

/// What every authentication and authorisation failure answers, word for word, so
/// that a caller cannot tell a missing key from a missing feed.
pub const FORBIDDEN_TEXT: &str =
    "The specified API key does not have the proper permissions to perform this action.";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{FORBIDDEN_TEXT}")]
    Forbidden,

    /// The request is wrong; the message is one sentence naming the field and the rule.
    #[error("{0}")]
    Invalid(String),

    /// Something named in the path does not exist.
    #[error("{0}")]
    NotFound(String),

    /// What is being added is already there with other content: 400 on the
    /// ProGet API (as ProGet answers), 409 on the native endpoints, whose
    /// clients show a conflict as such.
    #[error("{0}")]
    AlreadyExists(String),

    /// The endpoint exists, but not for this method; the sentence names what
    /// to do instead (405).
    #[error("{0}")]
    MethodNotAllowed(String),

    /// A feed's connector could not give what was asked (contract section
    /// 16): unreachable, failing, or serving bytes that do not match its own
    /// integrity. 502; the sentence names the connector.
    #[error("{0}")]
    Upstream(String),

    /// A native endpoint was asked without credentials for a feed that is
    /// not public: 401 with a challenge, since pip, NuGet and Maven send
    /// their credentials only when challenged (contract section 12).
    #[error("Authentication is required: send an API key (as a Bearer token, or as the password of Basic authentication).")]
    Unauthenticated,

    #[error("The request body is larger than the limit of {limit_kib} KiB.")]
    PayloadTooLarge { limit_kib: usize },

    #[error("The package file is larger than the upload limit of {limit_mib} MiB.")]
    UploadTooLarge { limit_mib: u64 },

    /// An upload's body stopped arriving: the server gave up waiting (408).
    #[error("The upload sent nothing for {seconds} s and was abandoned; nothing was stored.")]
    UploadStalled { seconds: u64 },

    /// A rate limit (see `http::limits`); `what` completes "too many requests …".
    #[error("Too many requests {what}; retry after {retry_after_secs} s.")]
    TooManyRequests {
        what: &'static str,
        retry_after_secs: u64,
    },

    #[error(
        "The request body must be sent as application/json or application/x-www-form-urlencoded."
    )]
    UnsupportedMediaType,

    #[error("A batch must be sent as application/json.")]
    UnsupportedBatchMediaType,

    #[error("The body must be the package file's bytes as they are, not multipart/form-data.")]
    UnsupportedUpload,

    /// The database could not be reached, or did not answer in time, so nothing
    /// was done: worth retrying. `reason` is a fixed phrase safe to show anyone;
    /// the cause (which may name hosts and users) goes to the log only.
    #[error("the database is unavailable: {reason}")]
    Unavailable {
        reason: &'static str,
        #[source]
        cause: Option<sqlx::Error>,
    },

    /// A statement failed for a reason retrying will not cure: a bug or a
    /// misconfigured database (such as a role without a privilege).
    #[error("a database statement failed")]
    Database(#[source] sqlx::Error),

    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Error {
    /// Sorts database errors into "try again later" and "something is broken".
    fn from(error: sqlx::Error) -> Self {
        match unavailable_reason(&error) {
            Some(reason) => Error::Unavailable {
                reason,
                cause: Some(error),
            },
            None => Error::Database(error),
        }
    }
}

impl Error {
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::Invalid(message.into())
    }

    /// A transaction PostgreSQL rolled back in a deadlock or serialisation
    /// failure: running it again is safe.
    pub fn is_transient_conflict(&self) -> bool {
        match self {
            Error::Unavailable {
                cause: Some(error), ..
            }
            | Error::Database(error) => is_transient_conflict(error),
            _ => false,
        }
    }
}

/// Why a database error means "unavailable, retry later", or `None` when it is a
/// real failure. Result codes are read per backend: PostgreSQL's SQLSTATEs are
/// text such as `08006`, SQLite's are numbers, and reading one as the other once
/// turned `42501 insufficient_privilege` into a 503.
pub fn unavailable_reason(error: &sqlx::Error) -> Option<&'static str> {
    match error {
        sqlx::Error::PoolTimedOut => Some("no connection to it could be made in time"),
        sqlx::Error::PoolClosed => Some("this server is shutting down"),
        sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => Some("the connection to it failed"),
        sqlx::Error::Tls(_) => Some("the TLS connection to it failed"),
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                postgres_unavailable_reason(pg.code())
            } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                let code = db.code()?.parse::<i32>().ok()?;
                sqlite_unavailable_reason(code)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// PostgreSQL SQLSTATEs that mean the server cannot serve us right now.
fn postgres_unavailable_reason(sqlstate: &str) -> Option<&'static str> {
    match sqlstate {
        // Class 08: connection exceptions.
        s if s.starts_with("08") => Some("the connection to it failed"),
        // admin_shutdown, crash_shutdown, cannot_connect_now (starting up or
        // shutting down), too_many_connections.
        "57P01" | "57P02" | "57P03" | "53300" => Some("it is not accepting connections"),
        // query_canceled: our statement_timeout ran out (a long lock wait), and
        // the statement was rolled back.
        "57014" => Some("it did not finish the statement in time"),
        // A deadlock or serialisation failure rolled the statement back; the
        // same request can succeed a moment later.
        CONFLICT_DEADLOCK | CONFLICT_SERIALIZATION => {
            Some("the statement collided with another one and was rolled back")
        }
        // read_only_sql_transaction: connected to a standby, as after a failover.
        "25006" => Some("it is read-only (a standby)"),
        _ => None,
    }
}

const CONFLICT_DEADLOCK: &str = "40P01";
const CONFLICT_SERIALIZATION: &str = "40001";

/// True when PostgreSQL rolled a statement back because it collided with
/// another transaction: running it again is safe and usually succeeds.
pub fn is_transient_conflict(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|db| db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
        .is_some_and(|pg| matches!(pg.code(), CONFLICT_DEADLOCK | CONFLICT_SERIALIZATION))
}

/// SQLite result codes (their low byte, so extended codes count too) that mean
/// another writer holds the file or the file cannot be opened.
fn sqlite_unavailable_reason(code: i32) -> Option<&'static str> {
    match code & 0xff {
        5 | 6 => Some("it is busy with other writes"),
        14 => Some("its file cannot be opened"),
        _ => None,
    }
}

/// An error and its causes as one line, each message once. Drivers often repeat
/// their cause inside their own message ("error returned from database: X" whose
/// source is X), so a cause already contained in the text so far is left out.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

/// The innermost cause of `error` (`error` itself when it has none): what
/// network errors actually say ("Connection refused (os error 111)") beneath
/// layers that each restate that a request failed.
pub fn root_cause<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> &'a (dyn std::error::Error + 'static) {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_not_read_as_sqlite_codes() {
        // 42501 insufficient_privilege: 42501 & 0xff == 5, SQLite's BUSY.
        for code in [
            "42501", "22021", "22022", "22030", "23505", "23503", "42P01",
        ] {
            assert_eq!(postgres_unavailable_reason(code), None, "{code}");
        }
        for code in [
            "08006", "08001", "57P01", "57P03", "53300", "57014", "40P01", "40001", "25006",
        ] {
            assert!(postgres_unavailable_reason(code).is_some(), "{code}");
        }
        assert!(sqlite_unavailable_reason(5).is_some());
        assert!(sqlite_unavailable_reason(517).is_some()); // SQLITE_BUSY_SNAPSHOT
        assert_eq!(sqlite_unavailable_reason(19), None); // CONSTRAINT
        assert_eq!(sqlite_unavailable_reason(8), None); // READONLY
    }

    #[test]
    fn describe_says_each_cause_once() {
        let inner = std::io::Error::other("role \"bob\" does not exist");
        let outer = anyhow::Error::new(inner).context("could not connect to PostgreSQL");
        assert_eq!(
            describe(outer.as_ref()),
            "could not connect to PostgreSQL: role \"bob\" does not exist"
        );
        // sqlx's message already holds its source's text.
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let repeated = anyhow::Error::new(sqlx::Error::Io(io)).context("could not connect");
        assert_eq!(
            describe(repeated.as_ref()),
            "could not connect: error communicating with database: Connection refused"
        );
    }
}
