//! The SQL both backends share, written once.
//!
//! SQLite (3.35+) and PostgreSQL agree on everything used here: numbered
//! parameters (`$1`), `RETURNING`, `ON CONFLICT ... DO UPDATE ... WHERE`,
//! `WITH RECURSIVE`. The macro below implements every repository trait for a
//! backend type that has a `pool` field, a `counters()` pool and these
//! hooks: `notify_in_tx(&mut tx, epoch)`, `notify_committed(epoch)`,
//! `count_call(chain, risk)` and `count_step(jti)`, which run
//! [`BudgetRepo::consume_call`] and [`RemitRepo::consume_step`]
//! (PostgreSQL: `consume_call_via_pool` and `consume_step_in_db`, generated
//! here; SQLite: steps and risk reserved ahead first), and `spare_steps` and
//! `spare_risk`: what the store reserved ahead and has not used, which the
//! database counts as used (PostgreSQL: 0). Every count read from the
//! database is reported through `steps_less_spare` or `risk_less_spare`,
//! the only places that subtract it.
//!
//! [`BudgetRepo::consume_call`]: crate::BudgetRepo::consume_call
//! [`RemitRepo::consume_step`]: crate::RemitRepo::consume_step
//!
//! Atomicity does not rely on application-level locks: conditional updates
//! (`... WHERE used < max RETURNING`) and single-row sequencers (the
//! revocation epoch and the log head) are serialized by the database itself,
//! within one process or across replicas.

use crate::error::StoreError;
use crate::model::{Id, RiskSpend};

pub(crate) const AGENT_COLUMNS: &str =
    "id, name, public_jwk, key_thumbprint, owner, risk_tier, status, created_at, updated_at";
pub(crate) const SERVER_COLUMNS: &str = "id, name, url, clearance, status, created_at, updated_at";
pub(crate) const TOOL_COLUMNS: &str =
    "server_id, name, risk, clearance, description_sha256, created_at, resource_arg";
pub(crate) const PROMPT_COLUMNS: &str = "server_id, name, description_sha256, pinned_at";
pub(crate) const REMIT_COLUMNS: &str =
    "jti, root_jti, parent_jti, holder_thumbprint, sub, agent_id, issued_at, expires_at, max_steps";
pub(crate) const REVOCATION_COLUMNS: &str = "kind, value, epoch, reason, revoked_by, revoked_at";
pub(crate) const APPROVAL_COLUMNS: &str = "id, agent_id, remit_jti, tool, call_hash, summary, state, requested_at, expires_at, decided_by, decided_at, consumed_at";
pub(crate) const OBSERVATION_COLUMNS: &str =
    "id, agent_id, tool, argument_shape, decision, observed_at";

/// Takes one step of a remit if it has one left; no row back means it
/// has none (or was never recorded).
pub(crate) const STEP_SQL: &str = "UPDATE issued_remits SET steps_used = steps_used + 1 \
     WHERE jti = $1 AND (max_steps IS NULL OR steps_used < max_steps) \
     RETURNING steps_used";
/// A remit's step limit, to tell "used up" from "never recorded".
pub(crate) const MAX_STEPS_SQL: &str = "SELECT max_steps FROM issued_remits WHERE jti = $1";
/// Adds to an agent's risk in a window if the total stays within the limit
/// (`$4`); no row back means it would not.
pub(crate) const RISK_UPSERT_SQL: &str =
    "INSERT INTO risk_budgets (agent_id, window_start, spent) VALUES ($1, $2, $3) \
     ON CONFLICT (agent_id, window_start) \
     DO UPDATE SET spent = risk_budgets.spent + excluded.spent \
     WHERE risk_budgets.spent + excluded.spent <= $4 \
     RETURNING spent";
/// The risk an agent has spent in a window (no row: none).
pub(crate) const RISK_SPENT_SQL: &str =
    "SELECT spent FROM risk_budgets WHERE agent_id = $1 AND window_start = $2";

/// Refuses negative risk, and drops a zero-cost spend (it takes no budget).
pub(crate) fn checked_risk(risk: Option<&RiskSpend>) -> Result<Option<&RiskSpend>, StoreError> {
    if let Some(r) = risk {
        if r.amount < 0 || r.limit < 0 {
            return Err(StoreError::Invalid {
                what: "risk amount",
                value: format!("{} (limit {})", r.amount, r.limit),
                reason: "risk amounts and limits are never negative",
            });
        }
    }
    Ok(risk.filter(|r| r.amount > 0))
}

/// The refusal of a spend that would take `r.agent` over its limit.
pub(crate) fn risk_exhausted(r: &RiskSpend, spent: i64) -> StoreError {
    StoreError::RiskBudgetExhausted {
        agent: r.agent.to_string(),
        spent,
        requested: r.amount,
        limit: r.limit,
    }
}

/// Why `jti` took no step, from its `max_steps` row (`None`: no such remit).
pub(crate) fn step_refused(jti: &Id, max_steps: Option<Option<i64>>) -> StoreError {
    match max_steps {
        None => StoreError::NotFound {
            what: "remit",
            id: jti.to_string(),
        },
        Some(max) => StoreError::StepsExhausted {
            jti: jti.to_string(),
            max: max.unwrap_or_default(),
        },
    }
}

/// Implements every repository trait for `$store` over `sqlx::$db`.
macro_rules! impl_repositories {
    ($store:ident, $db:ty) => {
        mod repositories {
        use super::$store;
        use $crate::error::{is_foreign_key_violation, StoreError};
        use $crate::model::*;
        use $crate::repo::*;
        use $crate::rows::*;
        use $crate::sql::*;

        impl $store {
            async fn fetch_agent(&self, id: &str) -> Result<Option<Agent>, StoreError> {
                let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1");
                sqlx::query_as::<$db, AgentRow>(&sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::query("look up an agent"))?
                    .map(Agent::try_from)
                    .transpose()
            }

            async fn fetch_server(&self, id: &str) -> Result<Option<McpServer>, StoreError> {
                let sql = format!("SELECT {SERVER_COLUMNS} FROM mcp_servers WHERE id = $1");
                sqlx::query_as::<$db, ServerRow>(&sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::query("look up a server"))?
                    .map(McpServer::try_from)
                    .transpose()
            }

            async fn fetch_remit(&self, jti: &str) -> Result<Option<IssuedRemit>, StoreError> {
                let sql = format!("SELECT {REMIT_COLUMNS} FROM issued_remits WHERE jti = $1");
                sqlx::query_as::<$db, RemitRow>(&sql)
                    .bind(jti)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::query("look up a remit"))?
                    .map(IssuedRemit::try_from)
                    .transpose()
            }

            async fn fetch_approval(&self, id: &str) -> Result<Option<Approval>, StoreError> {
                let sql = format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1");
                sqlx::query_as::<$db, ApprovalRow>(&sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::query("look up an approval"))?
                    .map(Approval::try_from)
                    .transpose()
            }
        }

        fn not_found(what: &'static str, id: &str) -> StoreError {
            StoreError::NotFound {
                what,
                id: id.to_owned(),
            }
        }

        impl $store {
            /// `jti`'s steps used, from the database's count `in_db`, which
            /// includes the steps this store reserved and has not used.
            fn steps_less_spare(&self, jti: &Id, in_db: i64) -> i64 {
                in_db - self.spare_steps(jti)
            }

            /// An agent's spend in a window, from the database's `in_db`,
            /// which includes the points this store reserved and has not
            /// spent.
            fn risk_less_spare(&self, agent: &Id, window_start: i64, in_db: i64) -> i64 {
                in_db - self.spare_risk(agent, window_start)
            }

            /// [`RemitRepo::consume_step`] in one statement on the main
            /// pool, reserving nothing ahead.
            pub(crate) async fn consume_step_in_db(&self, jti: &Id) -> Result<StepCount, StoreError> {
                let row: Option<(i64, Option<i64>)> = sqlx::query_as::<$db, (i64, Option<i64>)>(
                    "UPDATE issued_remits SET steps_used = steps_used + 1 \
                     WHERE jti = $1 AND (max_steps IS NULL OR steps_used < max_steps) \
                     RETURNING steps_used, max_steps",
                )
                .bind(jti.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::query("count a step"))?;
                match row {
                    Some((used, max)) => Ok(StepCount {
                        used: self.steps_less_spare(jti, used),
                        max,
                    }),
                    None => match self.fetch_remit(jti.as_str()).await? {
                        None => Err(not_found("remit", jti.as_str())),
                        Some(remit) => Err(StoreError::StepsExhausted {
                            jti: jti.to_string(),
                            max: remit.max_steps.unwrap_or_default(),
                        }),
                    },
                }
            }

            /// What `root` was exchanged from and who pays its risk, read
            /// once per root and cached (it never changes once written).
            async fn custody_of(&self, root: &Id) -> Result<$crate::custody::Custody, StoreError> {
                if let Some(custody) = self.custody.get(root) {
                    return Ok(custody);
                }
                let rows = sqlx::query_as::<$db, (String,)>($crate::custody::CUSTODY_SQL)
                    .bind(root.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::query("read what a remit was exchanged from"))?;
                let subjects = rows
                    .into_iter()
                    .map(|(jti,)| Id::stored("remit jti", jti))
                    .collect::<Result<std::sync::Arc<[Id]>, _>>()?;
                let payer = if subjects.is_empty() {
                    None
                } else {
                    sqlx::query_as::<$db, (String,)>($crate::custody::PAYER_SQL)
                        .bind(root.as_str())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(StoreError::query("read whose risk budget a remit spends"))?
                        .map(|(agent,)| Id::stored("agent id", agent))
                        .transpose()?
                };
                let custody = $crate::custody::Custody { subjects, payer };
                self.custody.put(root.clone(), custody.clone());
                Ok(custody)
            }

            /// [`BudgetRepo::consume_call`] through the counters pool: the
            /// path PostgreSQL always takes, and SQLite's fallback (and its
            /// benchmark baseline) when a reservation finds the database
            /// busy. The counts it reports, allowed or refused, leave out
            /// what this store holds reserved and unused.
            #[doc(hidden)]
            pub async fn consume_call_via_pool(
                &self,
                chain: &[Id],
                risk: Option<&RiskSpend>,
            ) -> Result<CallUsage, StoreError> {
                let action = "count a call's steps and risk";
                let risk = checked_risk(risk)?;
                if let Some(r) = risk.filter(|r| r.amount > r.limit) {
                    let spent = self.risk_spent(&r.agent, r.window_start).await?;
                    return Err(risk_exhausted(r, spent));
                }
                // Why a link took no step: never recorded, or used up.
                async fn refused<'c, E>(executor: E, jti: &Id) -> StoreError
                where
                    E: sqlx::Executor<'c, Database = $db>,
                {
                    let row = sqlx::query_as::<$db, (Option<i64>,)>(MAX_STEPS_SQL)
                        .bind(jti.as_str())
                        .fetch_optional(executor)
                        .await;
                    match row {
                        Ok(row) => step_refused(jti, row.map(|(max,)| max)),
                        Err(e) => StoreError::query("look up a remit")(e),
                    }
                }
                let pool = self.counters();
                // The common case, one link and no risk: one statement.
                if let ([jti], None) = (chain, risk) {
                    let row = sqlx::query_as::<$db, (i64,)>(STEP_SQL)
                        .bind(jti.as_str())
                        .fetch_optional(pool)
                        .await
                        .map_err(StoreError::query(action))?;
                    return match row {
                        Some((used,)) => Ok(CallUsage {
                            steps_used: self.steps_less_spare(jti, used),
                            risk_spent: None,
                        }),
                        None => Err(refused(pool, jti).await),
                    };
                }
                // Otherwise one transaction whose first statement writes (so
                // SQLite takes its write lock up front). Rows are locked leaf
                // first, then the budget: two calls sharing ancestors lock
                // them in the same order, so replicas cannot deadlock.
                let mut tx = pool.begin().await.map_err(StoreError::query(action))?;
                let mut leaf_steps = None;
                for jti in chain {
                    let row = sqlx::query_as::<$db, (i64,)>(STEP_SQL)
                        .bind(jti.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(StoreError::query(action))?;
                    let Some((used,)) = row else {
                        let error = refused(&mut *tx, jti).await;
                        // Dropping the transaction rolls it back.
                        drop(tx);
                        return Err(error);
                    };
                    // Inside the transaction: on SQLite it holds the write
                    // lock, so no reservation moves the count or the spare.
                    leaf_steps.get_or_insert_with(|| self.steps_less_spare(jti, used));
                }
                let mut usage = CallUsage {
                    steps_used: leaf_steps.unwrap_or_default(),
                    risk_spent: None,
                };
                if let Some(r) = risk {
                    let row = sqlx::query_as::<$db, (i64,)>(RISK_UPSERT_SQL)
                        .bind(r.agent.as_str())
                        .bind(r.window_start)
                        .bind(r.amount)
                        .bind(r.limit)
                        .fetch_optional(&mut *tx)
                        .await;
                    match row {
                        Ok(Some((spent,))) => {
                            usage.risk_spent =
                                Some(self.risk_less_spare(&r.agent, r.window_start, spent));
                        }
                        Ok(None) => {
                            let spent = sqlx::query_as::<$db, (i64,)>(RISK_SPENT_SQL)
                                .bind(r.agent.as_str())
                                .bind(r.window_start)
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(StoreError::query("read risk budget"))?
                                .map_or(0, |(s,)| s);
                            let spent = self.risk_less_spare(&r.agent, r.window_start, spent);
                            return Err(risk_exhausted(r, spent));
                        }
                        Err(e) if is_foreign_key_violation(&e) => {
                            return Err(not_found("agent", r.agent.as_str()))
                        }
                        Err(e) => return Err(StoreError::query("spend risk budget")(e)),
                    }
                }
                tx.commit().await.map_err(StoreError::query(action))?;
                Ok(usage)
            }
        }

        impl AgentRepo for $store {
            async fn register_agent(&self, agent: &NewAgent, now: i64) -> Result<Agent, StoreError> {
                let sql = format!(
                    "INSERT INTO agents ({AGENT_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $7) RETURNING {AGENT_COLUMNS}"
                );
                let inserted = sqlx::query_as::<$db, AgentRow>(&sql)
                    .bind(agent.id.as_str())
                    .bind(&agent.name)
                    .bind(&agent.public_jwk)
                    .bind(&agent.key_thumbprint)
                    .bind(&agent.owner)
                    .bind(agent.risk_tier.as_str())
                    .bind(now)
                    .fetch_one(&self.pool)
                    .await;
                match inserted {
                    Ok(row) => Agent::try_from(row),
                    Err(e) if $crate::error::is_unique_violation(&e) => {
                        if self.fetch_agent(agent.id.as_str()).await?.is_some() {
                            Err(StoreError::Duplicate { what: "agent", id: agent.id.to_string() })
                        } else {
                            Err(StoreError::Duplicate {
                                what: "agent key with thumbprint",
                                id: agent.key_thumbprint.clone(),
                            })
                        }
                    }
                    Err(e) => Err(StoreError::query("register an agent")(e)),
                }
            }

            async fn agent(&self, id: &Id) -> Result<Agent, StoreError> {
                self.fetch_agent(id.as_str())
                    .await?
                    .ok_or_else(|| not_found("agent", id.as_str()))
            }

            async fn agent_by_thumbprint(&self, thumbprint: &str) -> Result<Agent, StoreError> {
                let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE key_thumbprint = $1");
                sqlx::query_as::<$db, AgentRow>(&sql)
                    .bind(thumbprint)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::query("look up an agent by key"))?
                    .map(Agent::try_from)
                    .transpose()?
                    .ok_or_else(|| not_found("agent with key thumbprint", thumbprint))
            }

            async fn agents(&self) -> Result<Vec<Agent>, StoreError> {
                let sql = format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY id");
                let rows = sqlx::query_as::<$db, AgentRow>(&sql)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::query("list agents"))?;
                parse_all(rows)
            }

            async fn disable_agent(&self, id: &Id, now: i64) -> Result<Agent, StoreError> {
                let sql = format!(
                    "UPDATE agents SET updated_at = CASE WHEN status = 'disabled' THEN updated_at ELSE $2 END, \
                     status = 'disabled' WHERE id = $1 RETURNING {AGENT_COLUMNS}"
                );
                sqlx::query_as::<$db, AgentRow>(&sql)
                    .bind(id.as_str())
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::query("disable an agent"))?
                    .map(Agent::try_from)
                    .transpose()?
                    .ok_or_else(|| not_found("agent", id.as_str()))
            }
        }

        impl ServerRepo for $store {
            async fn add_server(&self, server: &NewMcpServer, now: i64) -> Result<McpServer, StoreError> {
                let sql = format!(
                    "INSERT INTO mcp_servers ({SERVER_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, 'active', $5, $5) RETURNING {SERVER_COLUMNS}"
                );
                let row = sqlx::query_as::<$db, ServerRow>(&sql)
                    .bind(server.id.as_str())
                    .bind(&server.name)
                    .bind(&server.url)
                    .bind(server.clearance.as_str())
                    .bind(now)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(StoreError::unique("add a server", "server", server.id.as_str()))?;
                McpServer::try_from(row)
            }

            async fn server(&self, id: &Id) -> Result<McpServer, StoreError> {
                // A server registered before ids were restricted is not served.
                ServerId::parse(id.as_str()).map_err(|_| StoreError::Invalid {
                    what: "server id",
                    value: id.as_str().to_owned(),
                    reason: "this server was registered before server ids were restricted (1 to 63 bytes of a-z 0-9 _ . -, no '/'); register it again under a valid id and disable this one",
                })?;
                self.fetch_server(id.as_str())
                    .await?
                    .ok_or_else(|| not_found("server", id.as_str()))
            }

            async fn servers(&self) -> Result<Vec<McpServer>, StoreError> {
                let sql = format!("SELECT {SERVER_COLUMNS} FROM mcp_servers ORDER BY id");
                let rows = sqlx::query_as::<$db, ServerRow>(&sql)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::query("list servers"))?;
                parse_all(rows)
            }

            async fn disable_server(&self, id: &Id, now: i64) -> Result<McpServer, StoreError> {
                let sql = format!(
                    "UPDATE mcp_servers SET updated_at = CASE WHEN status = 'disabled' THEN updated_at ELSE $2 END, \
                     status = 'disabled' WHERE id = $1 RETURNING {SERVER_COLUMNS}"
                );
                sqlx::query_as::<$db, ServerRow>(&sql)
                    .bind(id.as_str())
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::query("disable a server"))?
                    .map(McpServer::try_from)
                    .transpose()?
                    .ok_or_else(|| not_found("server", id.as_str()))
            }

            async fn add_tool(&self, tool: &Tool) -> Result<Tool, StoreError> {
                let sql = format!(
                    "INSERT INTO mcp_tools ({TOOL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     RETURNING {TOOL_COLUMNS}"
                );
                let full_name = format!("{}/{}", tool.server, tool.name);
                let inserted = sqlx::query_as::<$db, ToolRow>(&sql)
                    .bind(tool.server.as_str())
                    .bind(tool.name.as_str())
                    .bind(tool.risk.as_str())
                    .bind(tool.clearance.as_str())
                    .bind(&tool.description_sha256)
                    .bind(tool.created_at)
                    .bind(tool.resource_arg.as_deref())
                    .fetch_one(&self.pool)
                    .await;
                match inserted {
                    Ok(row) => Tool::try_from(row),
                    Err(e) if is_foreign_key_violation(&e) => {
                        Err(not_found("server", tool.server.as_str()))
                    }
                    Err(e) => Err(StoreError::unique("add a tool", "tool", &full_name)(e)),
                }
            }

            async fn tool(&self, server: &Id, name: &Id) -> Result<Tool, StoreError> {
                let sql = format!(
                    "SELECT {TOOL_COLUMNS} FROM mcp_tools WHERE server_id = $1 AND name = $2"
                );
                sqlx::query_as::<$db, ToolRow>(&sql)
                    .bind(server.as_str())
                    .bind(name.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::query("look up a tool"))?
                    .map(Tool::try_from)
                    .transpose()?
                    .ok_or_else(|| not_found("tool", &format!("{server}/{name}")))
            }

            async fn set_tool(&self, tool: &Tool) -> Result<Tool, StoreError> {
                let sql = format!(
                    "INSERT INTO mcp_tools ({TOOL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (server_id, name) DO UPDATE SET risk = excluded.risk, \
                     clearance = excluded.clearance, description_sha256 = excluded.description_sha256, \
                     resource_arg = excluded.resource_arg \
                     RETURNING {TOOL_COLUMNS}"
                );
                let stored = sqlx::query_as::<$db, ToolRow>(&sql)
                    .bind(tool.server.as_str())
                    .bind(tool.name.as_str())
                    .bind(tool.risk.as_str())
                    .bind(tool.clearance.as_str())
                    .bind(&tool.description_sha256)
                    .bind(tool.created_at)
                    .bind(tool.resource_arg.as_deref())
                    .fetch_one(&self.pool)
                    .await;
                match stored {
                    Ok(row) => Tool::try_from(row),
                    Err(e) if is_foreign_key_violation(&e) => {
                        Err(not_found("server", tool.server.as_str()))
                    }
                    Err(e) => Err(StoreError::query("pin a tool")(e)),
                }
            }

            async fn tools(&self, server: &Id) -> Result<Vec<Tool>, StoreError> {
                if self.fetch_server(server.as_str()).await?.is_none() {
                    return Err(not_found("server", server.as_str()));
                }
                let sql =
                    format!("SELECT {TOOL_COLUMNS} FROM mcp_tools WHERE server_id = $1 ORDER BY name");
                let rows = sqlx::query_as::<$db, ToolRow>(&sql)
                    .bind(server.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::query("list tools"))?;
                parse_all(rows)
            }

            async fn set_prompt(&self, prompt: &PromptPin) -> Result<PromptPin, StoreError> {
                let sql = format!(
                    "INSERT INTO mcp_prompts ({PROMPT_COLUMNS}) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (server_id, name) DO UPDATE SET \
                     description_sha256 = excluded.description_sha256, pinned_at = excluded.pinned_at \
                     RETURNING {PROMPT_COLUMNS}"
                );
                let stored = sqlx::query_as::<$db, PromptRow>(&sql)
                    .bind(prompt.server.as_str())
                    .bind(prompt.name.as_str())
                    .bind(&prompt.description_sha256)
                    .bind(prompt.pinned_at)
                    .fetch_one(&self.pool)
                    .await;
                match stored {
                    Ok(row) => PromptPin::try_from(row),
                    Err(e) if is_foreign_key_violation(&e) => {
                        Err(not_found("server", prompt.server.as_str()))
                    }
                    Err(e) => Err(StoreError::query("pin a prompt")(e)),
                }
            }

            async fn prompts(&self, server: &Id) -> Result<Vec<PromptPin>, StoreError> {
                if self.fetch_server(server.as_str()).await?.is_none() {
                    return Err(not_found("server", server.as_str()));
                }
                let sql = format!(
                    "SELECT {PROMPT_COLUMNS} FROM mcp_prompts WHERE server_id = $1 ORDER BY name"
                );
                let rows = sqlx::query_as::<$db, PromptRow>(&sql)
                    .bind(server.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::query("list prompts"))?;
                parse_all(rows)
            }
        }

        impl RemitRepo for $store {
            async fn record_remit(&self, remit: &IssuedRemit) -> Result<(), StoreError> {
                let invalid = |reason| StoreError::Invalid {
                    what: "issued remit",
                    value: remit.jti.to_string(),
                    reason,
                };
                if remit.max_steps.is_some_and(|m| m < 0) {
                    return Err(invalid("max_steps is negative"));
                }
                if remit.expires_at <= remit.issued_at {
                    return Err(invalid("it expires before it is issued"));
                }
                let result = match &remit.parent_jti {
                    None => {
                        if remit.root_jti != remit.jti {
                            return Err(invalid("a remit without a parent must be its own root"));
                        }
                        sqlx::query::<$db>(&format!(
                            "INSERT INTO issued_remits ({REMIT_COLUMNS}) \
                             VALUES ($1, $2, NULL, $3, $4, $5, $6, $7, $8)"
                        ))
                        .bind(remit.jti.as_str())
                        .bind(remit.root_jti.as_str())
                        .bind(&remit.holder_thumbprint)
                        .bind(remit.sub.as_str())
                        .bind(remit.agent.as_str())
                        .bind(remit.issued_at)
                        .bind(remit.expires_at)
                        .bind(remit.max_steps)
                        .execute(&self.pool)
                        .await
                    }
                    Some(parent) => {
                        // The root is copied from the parent row, and only
                        // when the caller's claim about it is right.
                        sqlx::query::<$db>(&format!(
                            "INSERT INTO issued_remits ({REMIT_COLUMNS}) \
                             SELECT $1, p.root_jti, p.jti, $3, $4, $5, $6, $7, $8 \
                             FROM issued_remits p WHERE p.jti = $9 AND p.root_jti = $2"
                        ))
                        .bind(remit.jti.as_str())
                        .bind(remit.root_jti.as_str())
                        .bind(&remit.holder_thumbprint)
                        .bind(remit.sub.as_str())
                        .bind(remit.agent.as_str())
                        .bind(remit.issued_at)
                        .bind(remit.expires_at)
                        .bind(remit.max_steps)
                        .bind(parent.as_str())
                        .execute(&self.pool)
                        .await
                    }
                };
                match result {
                    Ok(done) if done.rows_affected() == 1 => Ok(()),
                    Ok(_) => match &remit.parent_jti {
                        Some(parent) if self.fetch_remit(parent.as_str()).await?.is_none() => {
                            Err(not_found("parent remit", parent.as_str()))
                        }
                        _ => Err(invalid("its root_jti differs from its parent's root")),
                    },
                    Err(e) if is_foreign_key_violation(&e) => {
                        Err(not_found("agent", remit.agent.as_str()))
                    }
                    Err(e) => Err(StoreError::unique("record a remit", "remit", remit.jti.as_str())(e)),
                }
            }

            async fn remit(&self, jti: &Id) -> Result<IssuedRemit, StoreError> {
                self.fetch_remit(jti.as_str())
                    .await?
                    .ok_or_else(|| not_found("remit", jti.as_str()))
            }

            async fn subtree(&self, jti: &Id) -> Result<Vec<IssuedRemit>, StoreError> {
                let sql = format!(
                    "WITH RECURSIVE tree(jti) AS ( \
                         SELECT jti FROM issued_remits WHERE jti = $1 \
                         UNION ALL \
                         SELECT c.jti FROM issued_remits c JOIN tree t ON c.parent_jti = t.jti) \
                     SELECT {REMIT_COLUMNS} FROM issued_remits \
                     WHERE jti IN (SELECT jti FROM tree) ORDER BY issued_at, jti"
                );
                let rows = sqlx::query_as::<$db, RemitRow>(&sql)
                    .bind(jti.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::query("read a delegation subtree"))?;
                if rows.is_empty() {
                    return Err(not_found("remit", jti.as_str()));
                }
                parse_all(rows)
            }

            async fn consume_step(&self, jti: &Id) -> Result<StepCount, StoreError> {
                self.count_step(jti).await
            }
        }

        impl BudgetRepo for $store {
            async fn spend_risk(
                &self,
                agent: &Id,
                window_start: i64,
                amount: i64,
                limit: i64,
            ) -> Result<i64, StoreError> {
                if amount < 0 || limit < 0 {
                    return Err(StoreError::Invalid {
                        what: "risk amount",
                        value: format!("{amount} (limit {limit})"),
                        reason: "risk amounts and limits are never negative",
                    });
                }
                let exhausted = |spent| StoreError::RiskBudgetExhausted {
                    agent: agent.to_string(),
                    spent,
                    requested: amount,
                    limit,
                };
                if amount > limit {
                    let spent = self.risk_spent(agent, window_start).await?;
                    return Err(exhausted(spent));
                }
                let row = sqlx::query_as::<$db, (i64,)>(RISK_UPSERT_SQL)
                .bind(agent.as_str())
                .bind(window_start)
                .bind(amount)
                .bind(limit)
                .fetch_optional(&self.pool)
                .await;
                match row {
                    Ok(Some((spent,))) => Ok(self.risk_less_spare(agent, window_start, spent)),
                    Ok(None) => {
                        let spent = self.risk_spent(agent, window_start).await?;
                        Err(exhausted(spent))
                    }
                    Err(e) if is_foreign_key_violation(&e) => Err(not_found("agent", agent.as_str())),
                    Err(e) => Err(StoreError::query("spend risk budget")(e)),
                }
            }

            async fn consume_call(
                &self,
                chain: &[Id],
                risk: Option<&RiskSpend>,
            ) -> Result<CallUsage, StoreError> {
                let Some(root) = chain.last() else {
                    return self.count_call(chain, risk).await;
                };
                let subjects = self.custody_of(root).await?.subjects;
                if subjects.is_empty() {
                    return self.count_call(chain, risk).await;
                }
                // Leaf first still, so the count reported is the leaf's.
                self.count_call(&$crate::custody::extend(chain, &subjects), risk)
                    .await
            }

            async fn risk_payer(&self, root: &Id) -> Result<Option<Id>, StoreError> {
                Ok(self.custody_of(root).await?.payer)
            }

            async fn usage(&self, jti: &Id, agent: &Id, window_start: i64) -> Result<Usage, StoreError> {
                let row = sqlx::query_as::<$db, (i64, i64)>(
                    "SELECT \
                       COALESCE((SELECT steps_used FROM issued_remits WHERE jti = $1), 0), \
                       COALESCE((SELECT spent FROM risk_budgets WHERE agent_id = $2 AND window_start = $3), 0)",
                )
                .bind(jti.as_str())
                .bind(agent.as_str())
                .bind(window_start)
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::query("read a remit's steps and its agent's risk"))?;
                Ok(Usage {
                    steps_used: self.steps_less_spare(jti, row.0),
                    risk_spent: self.risk_less_spare(agent, window_start, row.1),
                })
            }

            async fn risk_spent(&self, agent: &Id, window_start: i64) -> Result<i64, StoreError> {
                let row = sqlx::query_as::<$db, (i64,)>(
                    "SELECT spent FROM risk_budgets WHERE agent_id = $1 AND window_start = $2",
                )
                .bind(agent.as_str())
                .bind(window_start)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::query("read risk budget"))?;
                let spent = row.map_or(0, |(spent,)| spent);
                Ok(self.risk_less_spare(agent, window_start, spent))
            }
        }

        impl RevocationRepo for $store {
            async fn revoke(
                &self,
                target: &RevocationTarget,
                reason: &str,
                revoked_by: &str,
                now: i64,
            ) -> Result<Revoked, StoreError> {
                let action = "record a revocation";
                let mut tx = self.pool.begin().await.map_err(StoreError::query(action))?;
                // Locking the single epoch row until commit makes epochs
                // visible in increasing order and serializes revocations
                // with the exchanges they propagate to.
                let before = Self::lock_epoch(&mut tx, action).await?;
                let mut epoch = before + 1;
                let (revocation, newly_revoked) = match Self::insert_revocation(
                    &mut tx, target, reason, revoked_by, now, epoch,
                )
                .await?
                {
                    Some(revocation) => (revocation, true),
                    None => {
                        // Already revoked: no epoch for it, but a missing
                        // propagation is repaired below.
                        epoch = before;
                        let sql = format!(
                            "SELECT {REVOCATION_COLUMNS} FROM revocations WHERE kind = $1 AND value = $2"
                        );
                        let existing = sqlx::query_as::<$db, RevocationRow>(&sql)
                            .bind(target.kind.as_str())
                            .bind(target.value.as_str())
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(StoreError::query(action))?
                            .ok_or_else(|| StoreError::Corrupt {
                                what: "revocation",
                                detail: format!(
                                    "{} {} conflicted but cannot be read back",
                                    target.kind, target.value
                                ),
                            })?;
                        (Revocation::try_from(existing)?, false)
                    }
                };
                let propagated =
                    Self::propagate_in_tx(&mut tx, vec![target.clone()], &mut epoch, now).await?;
                self.finish_revocations(tx, before, epoch, action).await?;
                Ok(Revoked { revocation, newly_revoked, propagated })
            }

            async fn revocations_since(&self, epoch: i64) -> Result<Vec<Revocation>, StoreError> {
                let sql = format!(
                    "SELECT {REVOCATION_COLUMNS} FROM revocations WHERE epoch > $1 ORDER BY epoch"
                );
                let rows = sqlx::query_as::<$db, RevocationRow>(&sql)
                    .bind(epoch)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::query("read revocations"))?;
                parse_all(rows)
            }

            async fn repair_propagation(&self, now: i64) -> Result<Vec<Revocation>, StoreError> {
                self.repair_missing_propagation(now).await
            }

            async fn revocation_epoch(&self) -> Result<i64, StoreError> {
                let (epoch,) = sqlx::query_as::<$db, (i64,)>(
                    "SELECT epoch FROM revocation_epoch WHERE id = 1",
                )
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::query("read the revocation epoch"))?;
                Ok(epoch)
            }
        }

        impl ApprovalRepo for $store {
            async fn request_approval(&self, approval: &NewApproval) -> Result<Approval, StoreError> {
                let sql = format!(
                    "INSERT INTO approvals ({APPROVAL_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, NULL, NULL, NULL) \
                     RETURNING {APPROVAL_COLUMNS}"
                );
                let inserted = sqlx::query_as::<$db, ApprovalRow>(&sql)
                    .bind(approval.id.as_str())
                    .bind(approval.agent.as_str())
                    .bind(approval.remit_jti.as_str())
                    .bind(approval.tool.as_str())
                    .bind(&approval.call_hash)
                    .bind(&approval.summary)
                    .bind(approval.requested_at)
                    .bind(approval.expires_at)
                    .fetch_one(&self.pool)
                    .await;
                match inserted {
                    Ok(row) => Approval::try_from(row),
                    Err(e) if is_foreign_key_violation(&e) => {
                        Err(not_found("agent", approval.agent.as_str()))
                    }
                    Err(e) => Err(StoreError::unique(
                        "hold a call for approval",
                        "approval",
                        approval.id.as_str(),
                    )(e)),
                }
            }

            async fn approval(&self, id: &Id) -> Result<Approval, StoreError> {
                self.fetch_approval(id.as_str())
                    .await?
                    .ok_or_else(|| not_found("approval", id.as_str()))
            }

            async fn pending_approvals(&self) -> Result<Vec<Approval>, StoreError> {
                let sql = format!(
                    "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE state = 'pending' \
                     ORDER BY requested_at, id"
                );
                let rows = sqlx::query_as::<$db, ApprovalRow>(&sql)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::query("list pending approvals"))?;
                parse_all(rows)
            }

            async fn decide_approval(
                &self,
                id: &Id,
                verdict: Verdict,
                decided_by: &str,
                now: i64,
            ) -> Result<Approval, StoreError> {
                let state = match verdict {
                    Verdict::Approve => ApprovalState::Approved,
                    Verdict::Reject => ApprovalState::Rejected,
                };
                let sql = format!(
                    "UPDATE approvals SET state = $2, decided_by = $3, decided_at = $4 \
                     WHERE id = $1 AND state = 'pending' AND expires_at > $4 \
                     RETURNING {APPROVAL_COLUMNS}"
                );
                let row = sqlx::query_as::<$db, ApprovalRow>(&sql)
                    .bind(id.as_str())
                    .bind(state.as_str())
                    .bind(decided_by)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::query("decide an approval"))?;
                if let Some(row) = row {
                    return Approval::try_from(row);
                }
                let current = self.approval(id).await?;
                if current.state != ApprovalState::Pending {
                    Err(StoreError::ApprovalAlreadyDecided {
                        id: id.to_string(),
                        state: current.state.to_string(),
                    })
                } else {
                    Err(StoreError::ApprovalNotUsable {
                        id: id.to_string(),
                        reason: "it expired before it was decided",
                    })
                }
            }

            async fn consume_approval(
                &self,
                id: &Id,
                call_hash: &str,
                now: i64,
            ) -> Result<Approval, StoreError> {
                let sql = format!(
                    "UPDATE approvals SET consumed_at = $3 \
                     WHERE id = $1 AND state = 'approved' AND consumed_at IS NULL \
                     AND call_hash = $2 AND expires_at > $3 \
                     RETURNING {APPROVAL_COLUMNS}"
                );
                let row = sqlx::query_as::<$db, ApprovalRow>(&sql)
                    .bind(id.as_str())
                    .bind(call_hash)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::query("use an approval"))?;
                if let Some(row) = row {
                    return Approval::try_from(row);
                }
                let current = self.approval(id).await?;
                let reason = if current.state == ApprovalState::Pending {
                    "it is still pending"
                } else if current.state == ApprovalState::Rejected {
                    "it was rejected"
                } else if current.consumed_at.is_some() {
                    "it was already used; an approval releases one call"
                } else if current.call_hash != call_hash {
                    "it approved a different call"
                } else {
                    "it expired"
                };
                Err(StoreError::ApprovalNotUsable { id: id.to_string(), reason })
            }
        }

        impl ObservationRepo for $store {
            async fn record_observation(&self, o: &NewObservation) -> Result<i64, StoreError> {
                let (id,) = sqlx::query_as::<$db, (i64,)>(
                    "INSERT INTO observations (agent_id, tool, argument_shape, decision, observed_at) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(o.agent.as_str())
                .bind(o.tool.as_str())
                .bind(&o.argument_shape)
                .bind(&o.decision)
                .bind(o.observed_at)
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::query("record an observation"))?;
                Ok(id)
            }

            async fn observations(
                &self,
                agent: Option<&Id>,
                after: i64,
                limit: u32,
            ) -> Result<Vec<Observation>, StoreError> {
                let sql = format!(
                    "SELECT {OBSERVATION_COLUMNS} FROM observations \
                     WHERE id > $1 AND ($2 IS NULL OR agent_id = $2) ORDER BY id LIMIT $3"
                );
                let rows = sqlx::query_as::<$db, ObservationRow>(&sql)
                    .bind(after)
                    .bind(agent.map(Id::as_str))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::query("list observations"))?;
                parse_all(rows)
            }
        }

        impl LogRepo for $store {
            async fn append_leaf(&self, leaf: &[u8]) -> Result<u64, StoreError> {
                let action = "append to the receipt log";
                let mut tx = self.pool.begin().await.map_err(StoreError::query(action))?;
                // The head row is locked until commit: appenders queue here,
                // and a rolled-back append gives its index back.
                let (size,) = sqlx::query_as::<$db, (i64,)>(
                    "UPDATE log_head SET size = size + 1 WHERE id = 1 RETURNING size",
                )
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::query(action))?;
                let index = size - 1;
                sqlx::query::<$db>("INSERT INTO log_leaves (idx, leaf) VALUES ($1, $2)")
                    .bind(index)
                    .bind(leaf)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query(action))?;
                tx.commit().await.map_err(StoreError::query(action))?;
                non_negative("log index", index)
            }

            async fn leaf(&self, index: u64) -> Result<Vec<u8>, StoreError> {
                let idx = to_i64("log index", index)?;
                sqlx::query_as::<$db, (Vec<u8>,)>("SELECT leaf FROM log_leaves WHERE idx = $1")
                    .bind(idx)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::query("read a log leaf"))?
                    .map(|(leaf,)| leaf)
                    .ok_or_else(|| not_found("log leaf", &index.to_string()))
            }

            async fn leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
                let rows = sqlx::query_as::<$db, (Vec<u8>,)>(
                    "SELECT leaf FROM log_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx",
                )
                .bind(to_i64("log index", start)?)
                .bind(to_i64("log index", end.min(i64::MAX as u64))?)
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query("read log leaves"))?;
                Ok(rows.into_iter().map(|(leaf,)| leaf).collect())
            }

            async fn log_size(&self) -> Result<u64, StoreError> {
                let (size,) = sqlx::query_as::<$db, (i64,)>("SELECT size FROM log_head WHERE id = 1")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(StoreError::query("read the log size"))?;
                non_negative("log size", size)
            }

            async fn put_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError> {
                let size = to_i64("checkpoint size", checkpoint.size)?;
                if checkpoint.size > self.log_size().await? {
                    return Err(StoreError::Invalid {
                        what: "checkpoint size",
                        value: checkpoint.size.to_string(),
                        reason: "it is larger than the log",
                    });
                }
                let done = sqlx::query::<$db>(
                    "INSERT INTO log_checkpoints (size, checkpoint) VALUES ($1, $2) \
                     ON CONFLICT (size) DO NOTHING",
                )
                .bind(size)
                .bind(&checkpoint.text)
                .execute(&self.pool)
                .await
                .map_err(StoreError::query("store a checkpoint"))?;
                if done.rows_affected() == 1 {
                    return Ok(());
                }
                let existing = self.checkpoint(checkpoint.size).await?;
                if existing.text == checkpoint.text {
                    Ok(())
                } else {
                    Err(StoreError::ConflictingCheckpoint { size: checkpoint.size })
                }
            }

            async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
                let row = sqlx::query_as::<$db, (i64, String)>(
                    "SELECT size, checkpoint FROM log_checkpoints ORDER BY size DESC LIMIT 1",
                )
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::query("read the latest checkpoint"))?;
                row.map(|(size, text)| {
                    Ok(StoredCheckpoint { size: non_negative("checkpoint size", size)?, text })
                })
                .transpose()
            }

            async fn checkpoint(&self, size: u64) -> Result<StoredCheckpoint, StoreError> {
                let row = sqlx::query_as::<$db, (String,)>(
                    "SELECT checkpoint FROM log_checkpoints WHERE size = $1",
                )
                .bind(to_i64("checkpoint size", size)?)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::query("read a checkpoint"))?;
                row.map(|(text,)| StoredCheckpoint { size, text })
                    .ok_or_else(|| not_found("checkpoint for log size", &size.to_string()))
            }
        }
        }
    };
}

pub(crate) use impl_repositories;
