//! SQL of [`crate::ObservationFactsRepo`] (issue 26), shared by both backends.

/// Implements [`crate::ObservationFactsRepo`] for `$store` over `sqlx::$db`.
macro_rules! impl_observation_facts_repo {
    ($store:ident, $db:ty) => {
        mod observation_facts_repository {
            use super::$store;
            use $crate::error::StoreError;
            use $crate::model::{Id, NewObservation, ObservedFacts};
            use $crate::repo::ObservationFactsRepo;
            use $crate::rows::{parse_all, ObservedFactsRow};
            use $crate::sql::OBSERVATION_COLUMNS;

            impl ObservationFactsRepo for $store {
                async fn record_observation_facts(
                    &self,
                    o: &NewObservation,
                    facts: &str,
                ) -> Result<i64, StoreError> {
                    let (id,) = sqlx::query_as::<$db, (i64,)>(
                        "INSERT INTO observations \
                         (agent_id, tool, argument_shape, decision, observed_at, facts) \
                         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    )
                    .bind(o.agent.as_str())
                    .bind(o.tool.as_str())
                    .bind(&o.argument_shape)
                    .bind(&o.decision)
                    .bind(o.observed_at)
                    .bind(facts)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(StoreError::query("record an observation with its facts"))?;
                    Ok(id)
                }

                async fn observed_facts(
                    &self,
                    agent: &Id,
                    since: i64,
                    limit: u32,
                ) -> Result<Vec<ObservedFacts>, StoreError> {
                    let sql = format!(
                        "SELECT {OBSERVATION_COLUMNS}, facts FROM observations \
                         WHERE agent_id = $1 AND observed_at >= $2 ORDER BY id DESC LIMIT $3"
                    );
                    let rows = sqlx::query_as::<$db, ObservedFactsRow>(&sql)
                        .bind(agent.as_str())
                        .bind(since)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(StoreError::query("list observations with their facts"))?;
                    let mut out: Vec<ObservedFacts> = parse_all(rows)?;
                    out.reverse();
                    Ok(out)
                }

                async fn prune_observations(
                    &self,
                    agent: &Id,
                    keep: u32,
                ) -> Result<u64, StoreError> {
                    let done = sqlx::query::<$db>(
                        "DELETE FROM observations WHERE agent_id = $1 AND id <= \
                         (SELECT id FROM observations WHERE agent_id = $1 \
                          ORDER BY id DESC LIMIT 1 OFFSET $2)",
                    )
                    .bind(agent.as_str())
                    .bind(i64::from(keep))
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::query("prune observations"))?;
                    Ok(done.rows_affected())
                }
            }
        }
    };
}

pub(crate) use impl_observation_facts_repo;
