//! A server or connection error as plain, password-free data.

use pgconverge_sql::redact_conninfo;

/// What went wrong with one request to the server. Built from a `tokio_postgres::Error`:
/// server errors keep their SQLSTATE, message, detail and hint; other errors (connection
/// lost, decoding) have no SQLSTATE and their cause chain as message. Every text is passed
/// through [`redact_conninfo`], because the server may quote a statement that holds a
/// `CONNECTION '… password=…'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// SQLSTATE, e.g. `42P07`; `None` when the error did not come from the server.
    pub sqlstate: Option<String>,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl From<tokio_postgres::Error> for QueryError {
    fn from(error: tokio_postgres::Error) -> Self {
        QueryError::from(&error)
    }
}

impl From<&tokio_postgres::Error> for QueryError {
    fn from(error: &tokio_postgres::Error) -> Self {
        match error.as_db_error() {
            Some(db) => QueryError {
                sqlstate: Some(db.code().code().to_string()),
                message: redact_conninfo(db.message()),
                detail: db.detail().map(redact_conninfo),
                hint: db.hint().map(redact_conninfo),
            },
            None => QueryError {
                sqlstate: None,
                message: redact_conninfo(&error_chain(error)),
                detail: None,
                hint: None,
            },
        }
    }
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(sqlstate) = &self.sqlstate {
            write!(f, " (SQLSTATE {sqlstate})")?;
        }
        if let Some(detail) = &self.detail {
            write!(f, "\nDETAIL: {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\nHINT: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for QueryError {}

/// `error: cause: cause…`; tokio-postgres' own `Display` shows only the outermost kind
/// ("error connecting to server") and hides the useful part in the sources.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
