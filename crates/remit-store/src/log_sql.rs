//! SQL of [`crate::SequencedLogRepo`]: appending a whole batch of receipt
//! leaves at a known position, for replicas sharing one log.

/// Implements [`crate::SequencedLogRepo`] for `$store` over `sqlx::$db`.
macro_rules! impl_sequenced_log_repo {
    ($store:ident, $db:ty) => {
        mod sequenced_log_repository {
            use super::$store;
            use $crate::error::StoreError;
            use $crate::repo::SequencedLogRepo;

            /// Rows per INSERT statement (two parameters each; well under
            /// both backends' parameter limits).
            const ROWS_PER_INSERT: usize = 256;

            impl SequencedLogRepo for $store {
                async fn append_leaves_at(
                    &self,
                    start: u64,
                    leaves: &[Vec<u8>],
                ) -> Result<bool, StoreError> {
                    let action = "append a batch to the receipt log";
                    let start_i = i64::try_from(start).map_err(|_| StoreError::Invalid {
                        what: "log index",
                        value: start.to_string(),
                        reason: "it is too large",
                    })?;
                    let count = i64::try_from(leaves.len()).unwrap_or(i64::MAX);
                    let mut tx = self.pool.begin().await.map_err(StoreError::query(action))?;
                    // Moves the head only if nobody appended since the caller
                    // sequenced its batch; the row stays locked until commit,
                    // so two replicas can never write the same indexes.
                    let moved = sqlx::query_as::<$db, (i64,)>(
                        "UPDATE log_head SET size = size + $1 WHERE id = 1 AND size = $2 RETURNING size",
                    )
                    .bind(count)
                    .bind(start_i)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(StoreError::query(action))?;
                    if moved.is_none() {
                        return Ok(false);
                    }
                    for (chunk_no, chunk) in leaves.chunks(ROWS_PER_INSERT).enumerate() {
                        let values = (0..chunk.len())
                            .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
                            .collect::<Vec<_>>()
                            .join(", ");
                        let sql = format!("INSERT INTO log_leaves (idx, leaf) VALUES {values}");
                        let mut query = sqlx::query::<$db>(&sql);
                        for (i, leaf) in chunk.iter().enumerate() {
                            let idx = start_i + (chunk_no * ROWS_PER_INSERT + i) as i64;
                            query = query.bind(idx).bind(leaf.as_slice());
                        }
                        query
                            .execute(&mut *tx)
                            .await
                            .map_err(StoreError::query(action))?;
                    }
                    tx.commit().await.map_err(StoreError::query(action))?;
                    Ok(true)
                }
            }
        }
    };
}

pub(crate) use impl_sequenced_log_repo;
