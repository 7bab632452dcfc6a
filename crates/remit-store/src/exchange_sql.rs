//! SQL of [`crate::ExchangeRepo`], shared by both backends (kept out of
//! `sql.rs`, which already holds one macro per other trait).

/// Implements [`crate::ExchangeRepo`] for `$store` over `sqlx::$db`.
macro_rules! impl_exchange_repo {
    ($store:ident, $db:ty) => {
        mod exchange_repository {
            use super::$store;
            use $crate::error::{is_unique_violation, StoreError};
            use $crate::model::{Id, RevocationKind};
            use $crate::repo::ExchangeRepo;

            impl ExchangeRepo for $store {
                async fn record_exchange(
                    &self,
                    root: &Id,
                    subject: &[(Id, Id)],
                ) -> Result<(), StoreError> {
                    let action = "record a token exchange";
                    let mut tx = self.pool.begin().await.map_err(StoreError::query(action))?;
                    for (jti, agent) in subject {
                        sqlx::query::<$db>(
                            "INSERT INTO exchange_links (exchanged_root, subject_jti, subject_agent) \
                             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        )
                        .bind(root.as_str())
                        .bind(jti.as_str())
                        .bind(agent.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query(action))?;
                    }
                    tx.commit().await.map_err(StoreError::query(action))
                }

                async fn exchanged_under(
                    &self,
                    kind: RevocationKind,
                    value: &Id,
                ) -> Result<Vec<Id>, StoreError> {
                    let column = match kind {
                        RevocationKind::Subtree => "subject_jti",
                        RevocationKind::Agent => "subject_agent",
                        _ => return Ok(Vec::new()),
                    };
                    let sql = format!(
                        "SELECT DISTINCT exchanged_root FROM exchange_links WHERE {column} = $1 \
                         ORDER BY exchanged_root"
                    );
                    let rows: Vec<(String,)> = sqlx::query_as::<$db, (String,)>(&sql)
                        .bind(value.as_str())
                        .fetch_all(&self.pool)
                        .await
                        .map_err(StoreError::query("find exchanged remits"))?;
                    rows.into_iter()
                        .map(|(jti,)| Id::parse("exchanged root", jti))
                        .collect()
                }

                async fn use_assertion(
                    &self,
                    agent: &Id,
                    jti: &str,
                    expires_at: i64,
                    now: i64,
                ) -> Result<(), StoreError> {
                    let action = "record an actor assertion";
                    sqlx::query::<$db>("DELETE FROM used_assertions WHERE expires_at < $1")
                        .bind(now)
                        .execute(&self.pool)
                        .await
                        .map_err(StoreError::query(action))?;
                    let inserted = sqlx::query::<$db>(
                        "INSERT INTO used_assertions (agent_id, jti, expires_at) VALUES ($1, $2, $3)",
                    )
                    .bind(agent.as_str())
                    .bind(jti)
                    .bind(expires_at)
                    .execute(&self.pool)
                    .await;
                    match inserted {
                        Ok(_) => Ok(()),
                        Err(e) if is_unique_violation(&e) => Err(StoreError::Duplicate {
                            what: "actor assertion",
                            id: jti.to_owned(),
                        }),
                        Err(e) => Err(StoreError::query(action)(e)),
                    }
                }
            }
        }
    };
}

pub(crate) use impl_exchange_repo;
