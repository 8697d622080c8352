//! Runs a step's statements on a node, in one transaction or one by one; session-level
//! advisory locks polled rather than waited for.

use tokio_postgres::Client;

use crate::query_error::QueryError;

/// A statement failed. Shows the server's message; the statement text itself is not kept
/// (it may hold a password in a `CONNECTION` string) and every text is redacted.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", describe(self))]
pub struct ExecError {
    /// Index into the statements passed in; `None` when `BEGIN` or `COMMIT` failed.
    pub statement_index: Option<usize>,
    pub error: QueryError,
    /// Where in the failed statement the server places the error: a 1-based character
    /// position, when it gives one.
    pub position: Option<u32>,
}

/// The server's position of an error within the statement it ran, when it gives one.
pub fn error_position(error: &tokio_postgres::Error) -> Option<u32> {
    match error.as_db_error()?.position()? {
        tokio_postgres::error::ErrorPosition::Original(position) => Some(*position),
        tokio_postgres::error::ErrorPosition::Internal { .. } => None,
    }
}

/// The 1-based line of `text` holding 1-based character `position`.
pub fn line_of_position(text: &str, position: u32) -> usize {
    let before = (position as usize).saturating_sub(1);
    1 + text.chars().take(before).filter(|c| *c == '\n').count()
}

impl ExecError {
    pub fn sqlstate(&self) -> Option<&str> {
        self.error.sqlstate.as_deref()
    }
    pub fn message(&self) -> &str {
        &self.error.message
    }
    pub fn detail(&self) -> Option<&str> {
        self.error.detail.as_deref()
    }
    pub fn hint(&self) -> Option<&str> {
        self.error.hint.as_deref()
    }
}

fn describe(error: &ExecError) -> String {
    match error.statement_index {
        Some(index) => format!("statement {} failed: {}", index + 1, error.error),
        None => format!("transaction failed: {}", error.error),
    }
}

/// Runs `statements` in order. `transactional`: all inside one `BEGIN … COMMIT`, rolled back
/// on the first failure. Otherwise each runs alone in its own implicit transaction, for
/// statements PostgreSQL refuses inside a transaction block (`CREATE SUBSCRIPTION` creating
/// a slot, `DROP SUBSCRIPTION` dropping one, `CREATE INDEX CONCURRENTLY`); the ones before a
/// failure stay done.
///
/// Statements go over the simple query protocol, one request each: a statement string must
/// hold a single statement for the non-transactional case to mean what it says.
pub async fn execute_statements(
    client: &mut Client,
    statements: &[String],
    transactional: bool,
) -> Result<(), ExecError> {
    let outside = |error: tokio_postgres::Error| ExecError {
        statement_index: None,
        error: QueryError::from(&error),
        position: None,
    };
    let failed_at = |index: usize| {
        move |error: tokio_postgres::Error| ExecError {
            statement_index: Some(index),
            error: QueryError::from(&error),
            position: error_position(&error),
        }
    };
    if transactional {
        let transaction = client.transaction().await.map_err(outside)?;
        for (index, statement) in statements.iter().enumerate() {
            // Dropping `transaction` on the error path rolls it back.
            transaction
                .batch_execute(statement)
                .await
                .map_err(failed_at(index))?;
        }
        transaction.commit().await.map_err(outside)
    } else {
        for (index, statement) in statements.iter().enumerate() {
            client
                .batch_execute(statement)
                .await
                .map_err(failed_at(index))?;
        }
        Ok(())
    }
}

/// `pg_try_advisory_lock(key)`: takes the session-level lock if it is free and says whether it
/// did. Polling instead of waiting, because a session blocked on an advisory lock can deadlock
/// with a concurrent `CREATE INDEX CONCURRENTLY` waiting for old snapshots.
pub async fn try_advisory_lock(client: &Client, key: i64) -> Result<bool, QueryError> {
    let row = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .await?;
    Ok(row.try_get(0)?)
}

/// `pg_advisory_unlock(key)`: releases a lock taken by [`try_advisory_lock`]; `false` when this
/// session did not hold it. Closing the session releases it too.
pub async fn advisory_unlock(client: &Client, key: i64) -> Result<bool, QueryError> {
    let row = client
        .query_one("SELECT pg_advisory_unlock($1)", &[&key])
        .await?;
    Ok(row.try_get(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_not_bytes() {
        let text = "-- é\nSELECT 1;\nSELEC 2;";
        assert_eq!(line_of_position(text, 1), 1);
        assert_eq!(line_of_position(text, 6), 2);
        assert_eq!(line_of_position(text, 16), 3);
        assert_eq!(line_of_position(text, 10_000), 3);
    }
}
