//! SQL of [`crate::ExchangeRepo`], shared by both backends (kept out of
//! `sql.rs`, which already holds one macro per other trait).

/// Implements [`crate::ExchangeRepo`] for `$store` over `sqlx::$db`.
macro_rules! impl_exchange_repo {
    ($store:ident, $db:ty) => {
        mod exchange_repository {
            use super::$store;
            use $crate::error::StoreError;
            use $crate::model::{ExchangeLink, Id, Revocation, RevocationKind, RevocationTarget};
            use $crate::repo::ExchangeRepo;
            use $crate::rows::RevocationRow;
            use $crate::sql::REVOCATION_COLUMNS;

            type Tx = sqlx::Transaction<'static, $db>;

            /// The revocations whose propagation to an exchanged root is
            /// missing: one cheap read, no lock.
            const MISSING_PROPAGATION: &str = "\
                SELECT r.kind, r.value FROM revocations r \
                  JOIN exchange_links l ON l.subject_jti = r.value \
                 WHERE r.kind = 'subtree' AND NOT EXISTS (SELECT 1 FROM revocations d \
                       WHERE d.kind = 'subtree' AND d.value = l.exchanged_root) \
                UNION \
                SELECT r.kind, r.value FROM revocations r \
                  JOIN exchange_links l ON l.subject_agent = r.value \
                 WHERE r.kind = 'agent' AND NOT EXISTS (SELECT 1 FROM revocations d \
                       WHERE d.kind = 'subtree' AND d.value = l.exchanged_root) \
                UNION \
                SELECT r.kind, r.value FROM revocations r \
                  JOIN exchange_links l ON l.subject_kid = r.value \
                 WHERE r.kind = 'kid' AND NOT EXISTS (SELECT 1 FROM revocations d \
                       WHERE d.kind = 'subtree' AND d.value = l.exchanged_root)";

            /// Revocation writes, serialized on the epoch row: whoever
            /// holds it (until commit) is the only writer of revocations
            /// and of exchange links, so reading "what is missing" and
            /// writing it cannot race another replica.
            impl $store {
                /// Locks the epoch row; returns the current epoch.
                pub(crate) async fn lock_epoch(tx: &mut Tx, action: &'static str) -> Result<i64, StoreError> {
                    let (epoch,) = sqlx::query_as::<$db, (i64,)>(
                        "UPDATE revocation_epoch SET epoch = epoch WHERE id = 1 RETURNING epoch",
                    )
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(StoreError::query(action))?;
                    Ok(epoch)
                }

                /// Publishes `epoch` as the latest (the row is locked).
                pub(crate) async fn set_epoch(tx: &mut Tx, epoch: i64, action: &'static str) -> Result<(), StoreError> {
                    sqlx::query::<$db>("UPDATE revocation_epoch SET epoch = $1 WHERE id = 1")
                        .bind(epoch)
                        .execute(&mut **tx)
                        .await
                        .map_err(StoreError::query(action))?;
                    Ok(())
                }

                /// Inserts a revocation at `epoch`; `None` when the target
                /// was already revoked.
                pub(crate) async fn insert_revocation(
                    tx: &mut Tx,
                    target: &RevocationTarget,
                    reason: &str,
                    revoked_by: &str,
                    now: i64,
                    epoch: i64,
                ) -> Result<Option<Revocation>, StoreError> {
                    let sql = format!(
                        "INSERT INTO revocations ({REVOCATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (kind, value) DO NOTHING RETURNING {REVOCATION_COLUMNS}"
                    );
                    sqlx::query_as::<$db, RevocationRow>(&sql)
                        .bind(target.kind.as_str())
                        .bind(target.value.as_str())
                        .bind(epoch)
                        .bind(reason)
                        .bind(revoked_by)
                        .bind(now)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(StoreError::query("record a revocation"))?
                        .map(Revocation::try_from)
                        .transpose()
                }

                /// Follows each of `causes` (revocations in force) to the
                /// exchanged roots derived from a subject chain it reaches
                /// and revokes their subtrees at `*epoch + 1, ...`,
                /// transitively (a revoked exchanged root is itself a link
                /// of chains exchanged from it). Roots already revoked are
                /// skipped, so this is idempotent.
                pub(crate) async fn propagate_in_tx(
                    tx: &mut Tx,
                    causes: Vec<RevocationTarget>,
                    epoch: &mut i64,
                    now: i64,
                ) -> Result<Vec<Revocation>, StoreError> {
                    let action = "propagate a revocation to exchanged remits";
                    let mut pending = causes;
                    let mut written = Vec::new();
                    while let Some(cause) = pending.pop() {
                        let column = match cause.kind {
                            RevocationKind::Subtree => "subject_jti",
                            RevocationKind::Agent => "subject_agent",
                            RevocationKind::Kid => "subject_kid",
                            _ => continue,
                        };
                        let sql = format!(
                            "SELECT DISTINCT l.exchanged_root FROM exchange_links l \
                             WHERE l.{column} = $1 AND NOT EXISTS (SELECT 1 FROM revocations d \
                                   WHERE d.kind = 'subtree' AND d.value = l.exchanged_root) \
                             ORDER BY l.exchanged_root"
                        );
                        let roots: Vec<(String,)> = sqlx::query_as::<$db, (String,)>(&sql)
                            .bind(cause.value.as_str())
                            .fetch_all(&mut **tx)
                            .await
                            .map_err(StoreError::query(action))?;
                        for (root,) in roots {
                            let target = RevocationTarget {
                                kind: RevocationKind::Subtree,
                                value: Id::stored("exchanged root", root)?,
                            };
                            let reason = format!(
                                "exchanged from a chain under revoked {} {}",
                                cause.kind,
                                cause.value.as_str()
                            );
                            let next = *epoch + 1;
                            if let Some(revocation) =
                                Self::insert_revocation(tx, &target, &reason, "exchange", now, next).await?
                            {
                                *epoch = next;
                                written.push(revocation);
                                pending.push(target);
                            }
                        }
                    }
                    Ok(written)
                }

                /// Commits `tx` after propagation wrote revocations up to
                /// `epoch` (above `before`), announcing them; rolls it back
                /// when nothing was written.
                pub(crate) async fn finish_revocations(
                    &self,
                    mut tx: Tx,
                    before: i64,
                    epoch: i64,
                    action: &'static str,
                ) -> Result<(), StoreError> {
                    if epoch == before {
                        return tx.rollback().await.map_err(StoreError::query(action));
                    }
                    Self::set_epoch(&mut tx, epoch, action).await?;
                    self.notify_in_tx(&mut tx, epoch).await?;
                    tx.commit().await.map_err(StoreError::query(action))?;
                    self.notify_committed(epoch);
                    Ok(())
                }

                /// See [`RevocationRepo::repair_propagation`](crate::RevocationRepo::repair_propagation).
                pub(crate) async fn repair_missing_propagation(
                    &self,
                    now: i64,
                ) -> Result<Vec<Revocation>, StoreError> {
                    let action = "repair revocation propagation";
                    let missing: Vec<(String, String)> =
                        sqlx::query_as::<$db, (String, String)>(MISSING_PROPAGATION)
                            .fetch_all(&self.pool)
                            .await
                            .map_err(StoreError::query(action))?;
                    if missing.is_empty() {
                        return Ok(Vec::new());
                    }
                    let causes = missing
                        .into_iter()
                        .map(|(kind, value)| {
                            Ok(RevocationTarget {
                                kind: RevocationKind::stored(&kind)?,
                                value: Id::stored("revoked value", value)?,
                            })
                        })
                        .collect::<Result<Vec<_>, StoreError>>()?;
                    let mut tx = self.pool.begin().await.map_err(StoreError::query(action))?;
                    let before = Self::lock_epoch(&mut tx, action).await?;
                    let mut epoch = before;
                    let written = Self::propagate_in_tx(&mut tx, causes, &mut epoch, now).await?;
                    self.finish_revocations(tx, before, epoch, action).await?;
                    Ok(written)
                }
            }

            impl ExchangeRepo for $store {
                async fn record_exchange(
                    &self,
                    root: &Id,
                    subject: &[ExchangeLink],
                    now: i64,
                ) -> Result<Vec<Revocation>, StoreError> {
                    let action = "record a token exchange";
                    let mut tx = self.pool.begin().await.map_err(StoreError::query(action))?;
                    // Serialized with revocations: one written before this
                    // is propagated to `root` below, one written after
                    // sees these links.
                    let before = Self::lock_epoch(&mut tx, action).await?;
                    for link in subject {
                        sqlx::query::<$db>(
                            "INSERT INTO exchange_links (exchanged_root, subject_jti, subject_agent, subject_kid) \
                             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        )
                        .bind(root.as_str())
                        .bind(link.jti.as_str())
                        .bind(link.agent.as_str())
                        .bind(link.kid.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query(action))?;
                    }
                    // One risk budget for the custody tree: the subject's
                    // payer (root first, so its leaf is the last link).
                    if let (Some(first), Some(leaf)) = (subject.first(), subject.last()) {
                        sqlx::query::<$db>($crate::custody::RECORD_PAYER_SQL)
                            .bind(root.as_str())
                            .bind(first.jti.as_str())
                            .bind(leaf.agent.as_str())
                            .execute(&mut *tx)
                            .await
                            .map_err(StoreError::query(action))?;
                    }
                    let mut causes = Vec::new();
                    for link in subject {
                        for (kind, value) in [
                            (RevocationKind::Subtree, &link.jti),
                            (RevocationKind::Agent, &link.agent),
                            (RevocationKind::Kid, &link.kid),
                        ] {
                            let (found,): (i64,) = sqlx::query_as::<$db, (i64,)>(
                                "SELECT COUNT(*) FROM revocations WHERE kind = $1 AND value = $2",
                            )
                            .bind(kind.as_str())
                            .bind(value.as_str())
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(StoreError::query(action))?;
                            if found > 0 {
                                causes.push(RevocationTarget { kind, value: value.clone() });
                            }
                        }
                    }
                    let mut epoch = before;
                    let written = Self::propagate_in_tx(&mut tx, causes, &mut epoch, now).await?;
                    if epoch == before {
                        tx.commit().await.map_err(StoreError::query(action))?;
                    } else {
                        Self::set_epoch(&mut tx, epoch, action).await?;
                        self.notify_in_tx(&mut tx, epoch).await?;
                        tx.commit().await.map_err(StoreError::query(action))?;
                        self.notify_committed(epoch);
                    }
                    Ok(written)
                }

                async fn exchanged_under(
                    &self,
                    kind: RevocationKind,
                    value: &Id,
                ) -> Result<Vec<Id>, StoreError> {
                    let column = match kind {
                        RevocationKind::Subtree => "subject_jti",
                        RevocationKind::Agent => "subject_agent",
                        RevocationKind::Kid => "subject_kid",
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
                    if self.assertion_sweep.due(now) {
                        sqlx::query::<$db>("DELETE FROM used_assertions WHERE expires_at < $1")
                            .bind(now)
                            .execute(&self.pool)
                            .await
                            .map_err(StoreError::query(action))?;
                    }
                    // One statement: a new jti is recorded, an expired one
                    // is recorded again, a live one returns no row.
                    let inserted = sqlx::query_as::<$db, (i64,)>(
                        "INSERT INTO used_assertions (agent_id, jti, expires_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (agent_id, jti) DO UPDATE SET expires_at = excluded.expires_at \
                         WHERE used_assertions.expires_at < $4 \
                         RETURNING expires_at",
                    )
                    .bind(agent.as_str())
                    .bind(jti)
                    .bind(expires_at)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await;
                    match inserted {
                        Ok(Some(_)) => Ok(()),
                        Ok(None) => Err(StoreError::Duplicate {
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

/// When the next sweep of expired single-use assertions is due: a live
/// assertion is checked and recorded in one statement, and the expired
/// ones are deleted at most once per [`AssertionSweep::EVERY`] seconds
/// instead of on every use.
#[derive(Debug, Default)]
pub(crate) struct AssertionSweep {
    next: std::sync::atomic::AtomicI64,
}

impl AssertionSweep {
    /// Seconds between sweeps.
    pub(crate) const EVERY: i64 = 60;

    /// Whether a sweep is due at `now`; `true` for one caller per period.
    pub(crate) fn due(&self, now: i64) -> bool {
        use std::sync::atomic::Ordering;
        let next = self.next.load(Ordering::Relaxed);
        now >= next
            && self
                .next
                .compare_exchange(
                    next,
                    now.saturating_add(Self::EVERY),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}
