//! The one error type of the crate. Each variant says what went wrong in words a
//! caller can act on; `http::error` turns it into a status and a `text/plain` body,
//! the CLI prints it.

/// What every authentication and authorisation failure answers, word for word, so
/// that a caller cannot tell a missing key from a missing feed.
pub const FORBIDDEN_TEXT: &str =
    "The specified API key does not have the proper permissions to perform this action.";

pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

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

    #[error("The request body is larger than the limit of 64 KiB.")]
    PayloadTooLarge,

    #[error(
        "The request body must be sent as application/json or application/x-www-form-urlencoded."
    )]
    UnsupportedMediaType,

    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::Invalid(message.into())
    }

    /// True when the database could not be reached at all, as opposed to a query
    /// that failed: the caller should retry later rather than report a bug.
    pub fn is_database_unavailable(&self) -> bool {
        let Error::Database(error) = self else {
            return false;
        };
        match error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                // PostgreSQL: class 08 is "connection exception"; 57P01–57P03 are
                // shutdowns and "cannot connect now". SQLite: 5 BUSY, 6 LOCKED,
                // 14 CANTOPEN (including their extended codes' low byte).
                code.starts_with("08")
                    || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
                    || code
                        .parse::<i32>()
                        .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 14))
            }),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
