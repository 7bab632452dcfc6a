//! Stage 6: a step of every link's remit and the payer's risk, atomically
//! in the store; and what was used before, which the policy sees at stage
//! 5. The payer is the caller's agent, or for a chain minted by token
//! exchange the agent whose budget paid for the chain it was exchanged
//! from: one risk budget for the whole custody tree, as one step counter.

use remit_store::{Id, IssuedRemit, RiskSpend, RiskTier, Store, StoreError, Usage};

use super::context::risk_cost;
use super::driver::Cx;
use super::stop::Stop;
use crate::auth::Caller;
use crate::{Gateway, GatewayConfig};
use remit_runtime::state::now;

/// The start of the risk window `now` falls in.
fn risk_window(config: &GatewayConfig) -> i64 {
    let w = config.risk_window_secs.max(1);
    let now = now();
    i64::try_from(now - now % w).unwrap_or(0)
}

/// Whose risk budget a request spends, and in which window.
pub(super) struct Payer {
    /// The paying agent.
    agent: Id,
    /// The start of the risk window the request counts in.
    window: i64,
}

/// What the caller's leaf remit and its risk payer used before this
/// request (steps, risk in the current window), as the policy is told,
/// and who pays.
pub(super) async fn usage<S: Store>(cx: &Cx<'_, S>) -> Result<(Usage, Payer), Stop> {
    let claims = cx.caller.chain.leaf_claims();
    let invalid = |e: StoreError| Stop::deny("gw-invalid-call", e.to_string());
    let leaf = Id::parse("remit jti", claims.jti.as_str()).map_err(invalid)?;
    let root = Id::parse("remit jti", claims.root.as_str()).map_err(invalid)?;
    let agent = match cx.state.store().risk_payer(&root).await? {
        Some(payer) => payer,
        None => Id::parse("agent id", cx.caller.agent()).map_err(invalid)?,
    };
    let window = risk_window(&cx.config);
    let cache = cx.state.gateway().cache();
    let usage = cache
        .usage(cx.state.store(), &leaf, &agent, window, cx.config.cache_ttl)
        .await?;
    Ok((usage, Payer { agent, window }))
}

/// Takes the request's step of every link and `risk`'s cost from the
/// payer's budget (none for a tier that costs nothing), all or nothing.
pub(super) async fn consume<S: Store>(
    cx: &Cx<'_, S>,
    payer: &Payer,
    risk: RiskTier,
) -> Result<(), Stop> {
    let window = payer.window;
    let cost = risk_cost(risk);
    let spend = (cost > 0).then(|| RiskSpend {
        agent: payer.agent.clone(),
        window_start: window,
        amount: cost,
        limit: i64::from(cx.config.risk_budget),
    });
    match consume_call(cx.state, cx.caller, window, spend.as_ref()).await {
        Ok(()) => Ok(()),
        Err(e @ StoreError::StepsExhausted { .. }) => {
            Err(Stop::deny("gw-steps-exhausted", e.to_string()))
        }
        Err(e @ StoreError::RiskBudgetExhausted { .. }) => {
            Err(Stop::deny("gw-risk-budget", e.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Uses one step of every remit along the chain, leaf first (a root's
/// `max_steps` bounds everything delegated from it), and the call's risk,
/// in one store round trip, all or nothing; what the store counted is
/// what the next call's policy sees. Links delegated offline are recorded
/// the first time they are seen.
async fn consume_call<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
    window: i64,
    risk: Option<&RiskSpend>,
) -> Result<(), StoreError> {
    let chain = caller
        .chain
        .links()
        .iter()
        .rev()
        .map(|link| Id::parse("remit jti", link.claims().jti.as_str()))
        .collect::<Result<Vec<_>, _>>()?;
    let counted = match state.store().consume_call(&chain, risk).await {
        Err(StoreError::NotFound { what: "remit", .. }) => {
            record_links(state, caller).await?;
            state.store().consume_call(&chain, risk).await
        }
        done => done,
    }?;
    if let Some(leaf) = chain.first() {
        let ttl = state.gateway().config().cache_ttl;
        state.gateway().cache().counted(leaf, window, counted, ttl);
    }
    Ok(())
}

/// Records every link of the caller's chain the store has not seen (a
/// sub-agent's remit delegated offline), root first.
async fn record_links<S: Store>(state: &Gateway<S>, caller: &Caller) -> Result<(), StoreError> {
    let mut parent: Option<Id> = None;
    for link in caller.chain.links() {
        let c = link.claims();
        let jti = Id::parse("remit jti", c.jti.as_str())?;
        match state.store().remit(&jti).await {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => {
                let record = IssuedRemit {
                    jti: jti.clone(),
                    root_jti: Id::parse("remit jti", c.root.as_str())?,
                    parent_jti: parent.clone(),
                    holder_thumbprint: c.cnf.jkt.as_str().to_owned(),
                    sub: Id::parse("user (sub)", c.sub.as_str())?,
                    agent: Id::parse("agent id", c.act.sub.as_str())?,
                    issued_at: i64::try_from(c.iat).unwrap_or(i64::MAX),
                    expires_at: i64::try_from(c.exp).unwrap_or(i64::MAX),
                    max_steps: c.max_steps.map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
                };
                match state.store().record_remit(&record).await {
                    Ok(()) | Err(StoreError::Duplicate { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
        parent = Some(jti);
    }
    Ok(())
}
