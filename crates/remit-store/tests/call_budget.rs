//! `consume_call`: a gateway call's steps (every link) and risk in one
//! round of the store, all or nothing, run identically on SQLite and
//! PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod harness;

use harness::Ctx;
use remit_store::*;

fn id(text: &str) -> Id {
    Id::parse("test id", text).unwrap()
}

async fn agent<S: Store>(s: &S, name: &str) {
    s.register_agent(
        &NewAgent {
            id: id(name),
            name: format!("{name} agent"),
            public_jwk: format!(r#"{{"kty":"EC","crv":"P-256","x":"{name}","y":"y"}}"#),
            key_thumbprint: format!("thumb-{name}"),
            owner: "ops@example.com".into(),
            risk_tier: RiskTier::Medium,
        },
        1,
    )
    .await
    .unwrap();
}

fn remit(jti: &str, parent: Option<&str>, max_steps: Option<i64>) -> IssuedRemit {
    IssuedRemit {
        jti: id(jti),
        root_jti: id(parent.map_or(jti, |_| "r1")),
        parent_jti: parent.map(id),
        holder_thumbprint: "thumb-agt_a".into(),
        sub: id("alice"),
        agent: id("agt_a"),
        issued_at: 1_000,
        expires_at: 1_300,
        max_steps,
    }
}

fn risk(amount: i64, limit: i64) -> RiskSpend {
    RiskSpend {
        agent: id("agt_a"),
        window_start: 3_600,
        amount,
        limit,
    }
}

/// Steps used so far on `jti`, read by taking one more.
async fn used_after_one_more<S: Store>(s: &S, jti: &str) -> i64 {
    s.consume_step(&id(jti)).await.unwrap().used
}

both_backends!(
    a_call_through_an_exhausted_ancestor_takes_no_step_anywhere,
    a_call_over_the_risk_budget_takes_no_step,
    an_unrecorded_link_refuses_the_call_and_takes_nothing,
    concurrent_calls_from_two_pools_never_overspend_a_shared_root,
    concurrent_calls_never_overspend_the_risk_budget,
);

async fn a_call_through_an_exhausted_ancestor_takes_no_step_anywhere<S: Store>(ctx: Ctx<S>) {
    let s = ctx.store;
    agent(&s, "agt_a").await;
    s.record_remit(&remit("r1", None, Some(2))).await.unwrap();
    s.record_remit(&remit("c1", Some("r1"), None))
        .await
        .unwrap();
    let chain = [id("c1"), id("r1")];
    // What a call reports is the leaf's count, not the root's.
    s.consume_call(&[id("r1")], None).await.unwrap();
    let first = s.consume_call(&chain, None).await.unwrap();
    assert_eq!((first.steps_used, first.risk_spent), (1, None));
    match s.consume_call(&chain, None).await {
        Err(StoreError::StepsExhausted { jti, max }) => assert_eq!((jti.as_str(), max), ("r1", 2)),
        other => panic!("expected the root's steps to be exhausted, got {other:?}"),
    }
    // The leaf's step of the refused call was rolled back with it.
    assert_eq!(used_after_one_more(&s, "c1").await, 2);
}

async fn a_call_over_the_risk_budget_takes_no_step<S: Store>(ctx: Ctx<S>) {
    let s = ctx.store;
    agent(&s, "agt_a").await;
    s.record_remit(&remit("r1", None, Some(10))).await.unwrap();
    let chain = [id("r1")];
    let spent = s.consume_call(&chain, Some(&risk(2, 3))).await.unwrap();
    assert_eq!((spent.steps_used, spent.risk_spent), (1, Some(2)));
    match s.consume_call(&chain, Some(&risk(2, 3))).await {
        Err(StoreError::RiskBudgetExhausted {
            spent,
            requested,
            limit,
            ..
        }) => assert_eq!((spent, requested, limit), (2, 2, 3)),
        other => panic!("expected the risk budget to be exhausted, got {other:?}"),
    }
    // An amount above the limit never fits, and takes nothing either.
    assert!(matches!(
        s.consume_call(&chain, Some(&risk(4, 3))).await,
        Err(StoreError::RiskBudgetExhausted { spent: 2, .. })
    ));
    assert!(matches!(
        s.consume_call(&chain, Some(&risk(-1, 3))).await,
        Err(StoreError::Invalid { .. })
    ));
    assert_eq!(used_after_one_more(&s, "r1").await, 2);
    assert_eq!(s.risk_spent(&id("agt_a"), 3_600).await.unwrap(), 2);
    assert_eq!(
        s.usage(&id("r1"), &id("agt_a"), 3_600).await.unwrap(),
        Usage {
            steps_used: 2,
            risk_spent: 2
        }
    );
    // Another window, and a remit never recorded, have used nothing.
    assert_eq!(
        s.usage(&id("ghost"), &id("agt_a"), 7_200).await.unwrap(),
        Usage::default()
    );
    // A zero-cost call spends no budget and still counts its step.
    s.consume_call(&chain, Some(&risk(0, 3))).await.unwrap();
    assert_eq!(used_after_one_more(&s, "r1").await, 4);
}

async fn an_unrecorded_link_refuses_the_call_and_takes_nothing<S: Store>(ctx: Ctx<S>) {
    let s = ctx.store;
    agent(&s, "agt_a").await;
    s.record_remit(&remit("r1", None, Some(10))).await.unwrap();
    for chain in [vec![id("ghost")], vec![id("ghost"), id("r1")]] {
        match s.consume_call(&chain, Some(&risk(1, 5))).await {
            Err(StoreError::NotFound { what, id }) => {
                assert_eq!((what, id.as_str()), ("remit", "ghost"))
            }
            other => panic!("expected the unknown link to be refused, got {other:?}"),
        }
    }
    assert_eq!(used_after_one_more(&s, "r1").await, 1);
    assert_eq!(s.risk_spent(&id("agt_a"), 3_600).await.unwrap(), 0);
}

async fn concurrent_calls_from_two_pools_never_overspend_a_shared_root<S: Store>(ctx: Ctx<S>) {
    const MAX: usize = 25;
    agent(&ctx.store, "agt_a").await;
    ctx.store
        .record_remit(&remit("r1", None, Some(MAX as i64)))
        .await
        .unwrap();
    for leaf in ["ca", "cb"] {
        ctx.store
            .record_remit(&remit(leaf, Some("r1"), None))
            .await
            .unwrap();
    }
    // 2 pools x 12 tasks x 3 calls = 72 calls at 25 steps, through two leaves.
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..24 {
        let store = if task % 2 == 0 {
            ctx.store.clone()
        } else {
            ctx.second.clone()
        };
        let leaf = if task % 3 == 0 { "ca" } else { "cb" };
        tasks.spawn(async move {
            let mut granted = 0;
            for _ in 0..3 {
                match store.consume_call(&[id(leaf), id("r1")], None).await {
                    Ok(_) => granted += 1,
                    Err(StoreError::StepsExhausted { jti, .. }) => assert_eq!(jti, "r1"),
                    Err(other) => panic!("unexpected {other}"),
                }
            }
            granted
        });
    }
    let mut granted = 0;
    while let Some(done) = tasks.join_next().await {
        granted += done.unwrap();
    }
    assert_eq!(granted, MAX, "each of the root's steps is granted once");
    // The leaves together took exactly the granted steps (once what each
    // handle reserved and did not use is given back).
    ctx.settle_both();
    let leaves =
        used_after_one_more(&ctx.second, "ca").await + used_after_one_more(&ctx.second, "cb").await;
    assert_eq!(leaves as usize, MAX + 2);
}

async fn concurrent_calls_never_overspend_the_risk_budget<S: Store>(ctx: Ctx<S>) {
    const LIMIT: i64 = 30;
    agent(&ctx.store, "agt_a").await;
    ctx.store
        .record_remit(&remit("r1", None, None))
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..20 {
        let store = if task % 2 == 0 {
            ctx.store.clone()
        } else {
            ctx.second.clone()
        };
        tasks.spawn(async move {
            let mut granted = 0;
            for _ in 0..3 {
                match store.consume_call(&[id("r1")], Some(&risk(1, LIMIT))).await {
                    Ok(_) => granted += 1,
                    Err(StoreError::RiskBudgetExhausted { spent, .. }) => assert_eq!(spent, LIMIT),
                    Err(other) => panic!("unexpected {other}"),
                }
            }
            granted
        });
    }
    let mut granted = 0;
    while let Some(done) = tasks.join_next().await {
        granted += done.unwrap();
    }
    assert_eq!(granted, LIMIT);
    assert_eq!(
        ctx.store.risk_spent(&id("agt_a"), 3_600).await.unwrap(),
        LIMIT
    );
    // Only the granted calls took a step.
    ctx.settle_both();
    assert_eq!(used_after_one_more(&ctx.store, "r1").await, LIMIT + 1);
}
