//! Repository behaviour, run identically on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use harness::Ctx;
use remit_store::*;

fn id(text: &str) -> Id {
    Id::parse("test id", text).unwrap()
}

fn new_agent(name: &str) -> NewAgent {
    NewAgent {
        id: id(name),
        name: format!("{name} agent"),
        public_jwk: format!(r#"{{"kty":"EC","crv":"P-256","x":"{name}","y":"y"}}"#),
        key_thumbprint: format!("thumb-{name}"),
        owner: "ops@example.com".into(),
        risk_tier: RiskTier::Medium,
    }
}

fn root_remit(jti: &str, agent: &str, max_steps: Option<i64>) -> IssuedRemit {
    IssuedRemit {
        jti: id(jti),
        root_jti: id(jti),
        parent_jti: None,
        holder_thumbprint: format!("thumb-{agent}"),
        sub: id("alice"),
        agent: id(agent),
        issued_at: 1_000,
        expires_at: 1_300,
        max_steps,
    }
}

fn child_remit(jti: &str, parent: &IssuedRemit) -> IssuedRemit {
    IssuedRemit {
        jti: id(jti),
        root_jti: parent.root_jti.clone(),
        parent_jti: Some(parent.jti.clone()),
        ..root_remit(jti, parent.agent.as_str(), None)
    }
}

fn target(kind: RevocationKind, value: &str) -> RevocationTarget {
    RevocationTarget {
        kind,
        value: id(value),
    }
}

both_backends!(
    registering_an_agent_twice_is_refused,
    unknown_agents_are_not_found,
    disabling_an_agent_is_idempotent,
    tools_pin_to_known_servers_only,
    remits_refuse_unknown_agents_parents_and_forged_roots,
    subtree_holds_descendants_not_siblings,
    overspending_steps_from_two_pools_is_impossible,
    risk_budget_cannot_be_overspent_concurrently,
    revoking_twice_uses_one_epoch,
    concurrent_revocations_get_dense_ordered_epochs,
    approvals_release_one_matching_call_once,
    approval_decisions_are_final,
    observations_filter_and_page,
    log_indices_stay_dense_under_concurrent_appends,
    checkpoints_cannot_be_rewritten,
    revocation_follower_sees_revocations_from_another_pool,
    set_tool_repins_and_keeps_creation_time,
    prompts_pin_to_known_servers_and_repin,
    a_revocation_reaching_a_subject_link_revokes_the_exchanged_root_in_the_same_write,
    an_exchanged_root_spends_the_risk_of_the_agent_that_paid_for_its_subject,
    an_exchange_recorded_after_the_revocation_is_revoked_with_it,
    a_revocation_left_without_its_propagation_is_repaired,
    a_single_use_assertion_is_refused_while_it_lives_and_forgotten_after,
    exchanging_a_used_up_remit_yields_no_new_steps,
);

/// Issue 22 item 5: r1 (3 steps) is used up; x1 and x2 exchanged from it
/// (x2 from x1's chain) each carry their own 3, yet every call under them
/// takes a step of r1 too, so none is allowed; and a subject with steps
/// left is drawn on by all its exchanges together.
async fn exchanging_a_used_up_remit_yields_no_new_steps<S: Store>(ctx: Ctx<S>) {
    let s = ctx.store;
    for agent in ["planner", "reader", "writer"] {
        s.register_agent(&new_agent(agent), 1_000).await.unwrap();
    }
    let r1 = root_remit("r1", "planner", Some(3));
    s.record_remit(&r1).await.unwrap();
    for _ in 0..3 {
        s.consume_call(&[id("r1")], None).await.unwrap();
    }
    assert_err!(
        s.consume_call(&[id("r1")], None).await,
        StoreError::StepsExhausted { .. }
    );
    let x1 = root_remit("x1", "reader", Some(3));
    s.record_remit(&x1).await.unwrap();
    s.record_remit(&child_remit("xc1", &x1)).await.unwrap();
    s.record_exchange(&id("x1"), &[link("r1", "planner", "k-issuer")], 1_000)
        .await
        .unwrap();
    assert_err!(
        ctx.second.consume_call(&[id("xc1"), id("x1")], None).await,
        StoreError::StepsExhausted { .. }
    );
    // Exchanged again from x1's chain: still r1's counter, transitively.
    let x2 = root_remit("x2", "writer", Some(3));
    s.record_remit(&x2).await.unwrap();
    s.record_exchange(
        &id("x2"),
        &[
            link("x1", "reader", "k-issuer"),
            link("xc1", "reader", "k-custody"),
        ],
        1_000,
    )
    .await
    .unwrap();
    assert_err!(
        s.consume_call(&[id("x2")], None).await,
        StoreError::StepsExhausted { .. }
    );
    // A subject with 2 steps left: its exchanges share those 2.
    let r2 = root_remit("r2", "planner", Some(2));
    s.record_remit(&r2).await.unwrap();
    for (root, holder) in [("y1", "reader"), ("y2", "writer")] {
        s.record_remit(&root_remit(root, holder, Some(5)))
            .await
            .unwrap();
        s.record_exchange(&id(root), &[link("r2", "planner", "k-issuer")], 1_000)
            .await
            .unwrap();
    }
    s.consume_call(&[id("y1")], None).await.unwrap();
    s.consume_call(&[id("y2")], None).await.unwrap();
    for root in ["y1", "y2", "r2"] {
        assert_err!(
            s.consume_call(&[id(root)], None).await,
            StoreError::StepsExhausted { .. }
        );
    }
    // A root never exchanged is counted as before.
    let plain = root_remit("p1", "planner", Some(1));
    s.record_remit(&plain).await.unwrap();
    s.consume_call(&[id("p1")], None).await.unwrap();
}

async fn registering_an_agent_twice_is_refused<S: Store>(ctx: Ctx<S>) {
    let s = ctx.store;
    let a = new_agent("agt_a");
    let stored = s.register_agent(&a, 10).await.unwrap();
    assert_eq!(stored.status, Status::Active);
    assert_eq!(stored.public_jwk, a.public_jwk);

    assert_err!(
        s.register_agent(&a, 11).await,
        StoreError::Duplicate { what: "agent", .. }
    );
    // Same key under a new id: one key, one agent.
    let mut same_key = new_agent("agt_b");
    same_key.key_thumbprint = a.key_thumbprint.clone();
    assert_err!(
        ctx.second.register_agent(&same_key, 11).await,
        StoreError::Duplicate {
            what: "agent key with thumbprint",
            ..
        }
    );
    assert_eq!(s.agents().await.unwrap().len(), 1);
    assert_eq!(s.agent_by_thumbprint("thumb-agt_a").await.unwrap().id, a.id);
}

async fn unknown_agents_are_not_found<S: Store>(ctx: Ctx<S>) {
    let s = ctx.store;
    assert_err!(s.agent(&id("ghost")).await, StoreError::NotFound { .. });
    assert_err!(
        s.agent_by_thumbprint("nope").await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        s.disable_agent(&id("ghost"), 1).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        s.spend_risk(&id("ghost"), 0, 1, 10).await,
        StoreError::NotFound { what: "agent", .. }
    );
}

async fn disabling_an_agent_is_idempotent<S: Store>(ctx: Ctx<S>) {
    let s = ctx.store;
    s.register_agent(&new_agent("agt_a"), 10).await.unwrap();
    let first = s.disable_agent(&id("agt_a"), 20).await.unwrap();
    assert_eq!(first.status, Status::Disabled);
    assert_eq!(first.updated_at, 20);
    let again = ctx.second.disable_agent(&id("agt_a"), 30).await.unwrap();
    assert_eq!(again.status, Status::Disabled);
    assert_eq!(
        again.updated_at, 20,
        "a no-op disable must not rewrite history"
    );
}

async fn set_tool_repins_and_keeps_creation_time<S: Store>(ctx: Ctx<S>) {
    let s = ctx.store;
    let mut tool = Tool {
        server: id("srv_web"),
        name: id("fetch"),
        risk: RiskTier::Low,
        clearance: Classification::Internal,
        description_sha256: "ab".repeat(32),
        created_at: 5,
        resource_arg: None,
    };
    assert_err!(
        s.set_tool(&tool).await,
        StoreError::NotFound { what: "server", .. }
    );
    let server = NewMcpServer {
        id: ServerId::parse("srv_web").unwrap(),
        name: "Web".into(),
        url: "stdio:python3 server.py".into(),
        clearance: Classification::Internal,
    };
    s.add_server(&server, 1).await.unwrap();
    assert_eq!(s.set_tool(&tool).await.unwrap(), tool);
    let repinned = Tool {
        risk: RiskTier::High,
        description_sha256: "cd".repeat(32),
        created_at: 99,
        resource_arg: Some("path".into()),
        ..tool.clone()
    };
    let stored = s.set_tool(&repinned).await.unwrap();
    tool.risk = RiskTier::High;
    tool.description_sha256 = "cd".repeat(32);
    tool.resource_arg = Some("path".into());
    assert_eq!(stored, tool, "created_at is kept, the rest replaced");
    assert_eq!(s.tools(&id("srv_web")).await.unwrap(), vec![tool]);
}

async fn prompts_pin_to_known_servers_and_repin<S: Store>(ctx: Ctx<S>) {
    let s = ctx.store;
    let prompt = PromptPin {
        server: id("srv_notes"),
        name: id("summarize"),
        description_sha256: "ab".repeat(32),
        pinned_at: 5,
    };
    assert_err!(
        s.set_prompt(&prompt).await,
        StoreError::NotFound { what: "server", .. }
    );
    assert_err!(
        s.prompts(&id("srv_notes")).await,
        StoreError::NotFound { .. }
    );
    let server = NewMcpServer {
        id: ServerId::parse("srv_notes").unwrap(),
        name: "Notes".into(),
        url: "stdio:python3 server.py".into(),
        clearance: Classification::Internal,
    };
    s.add_server(&server, 1).await.unwrap();
    assert_eq!(s.prompts(&id("srv_notes")).await.unwrap(), vec![]);
    assert_eq!(s.set_prompt(&prompt).await.unwrap(), prompt);
    let repinned = PromptPin {
        description_sha256: "cd".repeat(32),
        pinned_at: 9,
        ..prompt.clone()
    };
    assert_eq!(ctx.second.set_prompt(&repinned).await.unwrap(), repinned);
    assert_eq!(s.prompts(&id("srv_notes")).await.unwrap(), vec![repinned]);
}

async fn tools_pin_to_known_servers_only<S: Store>(ctx: Ctx<S>) {
    let s = ctx.store;
    let tool = Tool {
        server: id("srv_files"),
        name: id("read_file"),
        risk: RiskTier::Low,
        clearance: Classification::Internal,
        description_sha256: "ab".repeat(32),
        created_at: 5,
        resource_arg: None,
    };
    assert_err!(
        s.add_tool(&tool).await,
        StoreError::NotFound { what: "server", .. }
    );
    assert_err!(s.tools(&id("srv_files")).await, StoreError::NotFound { .. });
    let server = NewMcpServer {
        id: ServerId::parse("srv_files").unwrap(),
        name: "Files".into(),
        url: "http://127.0.0.1:9000/mcp".into(),
        clearance: Classification::Confidential,
    };
    s.add_server(&server, 1).await.unwrap();
    assert_err!(
        s.add_server(&server, 2).await,
        StoreError::Duplicate { what: "server", .. }
    );
    assert_eq!(s.add_tool(&tool).await.unwrap(), tool);
    assert_err!(
        ctx.second.add_tool(&tool).await,
        StoreError::Duplicate { what: "tool", .. }
    );
    assert_eq!(s.tools(&id("srv_files")).await.unwrap(), vec![tool.clone()]);
    assert_eq!(
        s.tool(&id("srv_files"), &id("read_file")).await.unwrap(),
        tool
    );
    assert_err!(
        s.tool(&id("srv_files"), &id("write_file")).await,
        StoreError::NotFound { .. }
    );
    let disabled = s.disable_server(&id("srv_files"), 9).await.unwrap();
    assert_eq!(disabled.status, Status::Disabled);
    assert_eq!(s.servers().await.unwrap(), vec![disabled]);
}

async fn remits_refuse_unknown_agents_parents_and_forged_roots<S: Store>(ctx: Ctx<S>) {
    let s = ctx.store;
    assert_err!(
        s.record_remit(&root_remit("r1", "ghost", None)).await,
        StoreError::NotFound { what: "agent", .. }
    );
    s.register_agent(&new_agent("agt_a"), 1).await.unwrap();
    let root = root_remit("r1", "agt_a", Some(3));
    s.record_remit(&root).await.unwrap();
    assert_err!(
        ctx.second.record_remit(&root).await,
        StoreError::Duplicate { what: "remit", .. }
    );
    assert_eq!(s.remit(&id("r1")).await.unwrap(), root);

    let mut orphan = child_remit("c1", &root);
    orphan.parent_jti = Some(id("nobody"));
    assert_err!(
        s.record_remit(&orphan).await,
        StoreError::NotFound {
            what: "parent remit",
            ..
        }
    );
    let mut forged = child_remit("c1", &root);
    forged.root_jti = id("other-root");
    assert_err!(s.record_remit(&forged).await, StoreError::Invalid { .. });
    let mut self_rooted = root_remit("r2", "agt_a", None);
    self_rooted.root_jti = id("r1");
    assert_err!(
        s.record_remit(&self_rooted).await,
        StoreError::Invalid { .. }
    );
    let mut backwards = root_remit("r3", "agt_a", None);
    backwards.expires_at = backwards.issued_at;
    assert_err!(s.record_remit(&backwards).await, StoreError::Invalid { .. });
    assert_err!(s.remit(&id("c1")).await, StoreError::NotFound { .. });
    assert_err!(s.consume_step(&id("c1")).await, StoreError::NotFound { .. });
}

async fn subtree_holds_descendants_not_siblings<S: Store>(ctx: Ctx<S>) {
    let s = ctx.store;
    s.register_agent(&new_agent("agt_a"), 1).await.unwrap();
    let root = root_remit("root", "agt_a", None);
    s.record_remit(&root).await.unwrap();
    let child = child_remit("child", &root);
    let sibling = child_remit("sibling", &root);
    s.record_remit(&child).await.unwrap();
    s.record_remit(&sibling).await.unwrap();
    let grandchild = child_remit("grandchild", &child);
    s.record_remit(&grandchild).await.unwrap();
    assert_eq!(grandchild.root_jti, root.jti);

    let tree: BTreeSet<String> = s
        .subtree(&id("child"))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.jti.to_string())
        .collect();
    assert_eq!(
        tree,
        BTreeSet::from(["child".to_owned(), "grandchild".to_owned()])
    );
    assert_eq!(s.subtree(&id("root")).await.unwrap().len(), 4);
    assert_err!(s.subtree(&id("ghost")).await, StoreError::NotFound { .. });
}

async fn overspending_steps_from_two_pools_is_impossible<S: Store>(ctx: Ctx<S>) {
    const MAX: i64 = 25;
    ctx.store
        .register_agent(&new_agent("agt_a"), 1)
        .await
        .unwrap();
    ctx.store
        .record_remit(&root_remit("r1", "agt_a", Some(MAX)))
        .await
        .unwrap();
    // 2 pools x 12 tasks x 3 attempts = 72 attempts at 25 steps.
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..24 {
        let store = if task % 2 == 0 {
            ctx.store.clone()
        } else {
            ctx.second.clone()
        };
        tasks.spawn(async move {
            let mut granted = Vec::new();
            for _ in 0..3 {
                match store.consume_step(&id("r1")).await {
                    Ok(count) => granted.push(count.used),
                    Err(StoreError::StepsExhausted { max, .. }) => assert_eq!(max, MAX),
                    Err(other) => panic!("unexpected {other}"),
                }
            }
            granted
        });
    }
    let mut used: Vec<i64> = Vec::new();
    while let Some(done) = tasks.join_next().await {
        used.extend(done.unwrap());
    }
    used.sort_unstable();
    assert_eq!(
        used,
        (1..=MAX).collect::<Vec<_>>(),
        "each step granted once"
    );
    assert_err!(
        ctx.second.consume_step(&id("r1")).await,
        StoreError::StepsExhausted { .. }
    );
}

async fn risk_budget_cannot_be_overspent_concurrently<S: Store>(ctx: Ctx<S>) {
    const LIMIT: i64 = 30;
    ctx.store
        .register_agent(&new_agent("agt_a"), 1)
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
            let mut ok = 0;
            for _ in 0..3 {
                match store.spend_risk(&id("agt_a"), 3_600, 1, LIMIT).await {
                    Ok(total) => {
                        assert!(total <= LIMIT);
                        ok += 1;
                    }
                    Err(StoreError::RiskBudgetExhausted { spent, limit, .. }) => {
                        assert_eq!((spent, limit), (LIMIT, LIMIT));
                    }
                    Err(other) => panic!("unexpected {other}"),
                }
            }
            ok
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
    // Another window is a fresh budget; an amount above the limit never fits.
    assert_eq!(
        ctx.store
            .spend_risk(&id("agt_a"), 7_200, 5, LIMIT)
            .await
            .unwrap(),
        5
    );
    assert_err!(
        ctx.store
            .spend_risk(&id("agt_a"), 10_800, LIMIT + 1, LIMIT)
            .await,
        StoreError::RiskBudgetExhausted { spent: 0, .. }
    );
    assert_err!(
        ctx.store.spend_risk(&id("agt_a"), 10_800, -1, LIMIT).await,
        StoreError::Invalid { .. }
    );
}

async fn revoking_twice_uses_one_epoch<S: Store>(ctx: Ctx<S>) {
    let s = ctx.store;
    assert_eq!(s.revocation_epoch().await.unwrap(), 0);
    let t = target(RevocationKind::Agent, "agt_a");
    let first = s.revoke(&t, "key leaked", "admin", 100).await.unwrap();
    assert!(first.newly_revoked);
    assert_eq!(first.revocation.epoch, 1);
    let again = ctx
        .second
        .revoke(&t, "again", "someone", 200)
        .await
        .unwrap();
    assert!(!again.newly_revoked);
    assert_eq!(again.revocation, first.revocation, "the first one stands");
    assert_eq!(s.revocation_epoch().await.unwrap(), 1);
    // The same value under another kind is another revocation.
    let other = s
        .revoke(&target(RevocationKind::Sub, "agt_a"), "r", "admin", 300)
        .await
        .unwrap();
    assert_eq!(other.revocation.epoch, 2);
    let all = s.revocations_since(0).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        s.revocations_since(1).await.unwrap(),
        vec![other.revocation]
    );
}

async fn concurrent_revocations_get_dense_ordered_epochs<S: Store>(ctx: Ctx<S>) {
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..20 {
        let store = if n % 2 == 0 {
            ctx.store.clone()
        } else {
            ctx.second.clone()
        };
        tasks.spawn(async move {
            // Every target twice: the duplicates must not burn epochs.
            let t = target(RevocationKind::Jti, &format!("jti-{}", n % 10));
            store.revoke(&t, "r", "admin", n).await.unwrap()
        });
    }
    let mut newly = 0;
    while let Some(done) = tasks.join_next().await {
        newly += usize::from(done.unwrap().newly_revoked);
    }
    assert_eq!(newly, 10);
    let epochs: Vec<i64> = ctx
        .store
        .revocations_since(0)
        .await
        .unwrap()
        .iter()
        .map(|r| r.epoch)
        .collect();
    assert_eq!(epochs, (1..=10).collect::<Vec<_>>());
    assert_eq!(ctx.second.revocation_epoch().await.unwrap(), 10);
}

fn held_call(id_text: &str, expires_at: i64) -> NewApproval {
    NewApproval {
        id: id(id_text),
        agent: id("agt_a"),
        remit_jti: id("r1"),
        tool: id("payments.send"),
        call_hash: "c0".repeat(32),
        summary: "send 5000 EUR to an external account".into(),
        requested_at: 100,
        expires_at,
    }
}

async fn approvals_release_one_matching_call_once<S: Store>(ctx: Ctx<S>) {
    let s = ctx.store;
    assert_err!(
        s.request_approval(&held_call("ap1", 500)).await,
        StoreError::NotFound { what: "agent", .. }
    );
    s.register_agent(&new_agent("agt_a"), 1).await.unwrap();
    let held = s.request_approval(&held_call("ap1", 500)).await.unwrap();
    assert_eq!(held.state, ApprovalState::Pending);
    assert_err!(
        s.request_approval(&held_call("ap1", 500)).await,
        StoreError::Duplicate { .. }
    );
    assert_eq!(s.pending_approvals().await.unwrap(), vec![held.clone()]);
    let hash = held.call_hash.clone();
    assert_err!(
        s.consume_approval(&id("ap1"), &hash, 150).await,
        StoreError::ApprovalNotUsable {
            reason: "it is still pending",
            ..
        }
    );
    s.decide_approval(&id("ap1"), Verdict::Approve, "bob", 200)
        .await
        .unwrap();
    assert!(s.pending_approvals().await.unwrap().is_empty());
    assert_err!(
        s.consume_approval(&id("ap1"), &"ff".repeat(32), 210).await,
        StoreError::ApprovalNotUsable {
            reason: "it approved a different call",
            ..
        }
    );
    assert_err!(
        s.consume_approval(&id("ap1"), &hash, 500).await,
        StoreError::ApprovalNotUsable {
            reason: "it expired",
            ..
        }
    );

    // Two replicas race to release the same approval: exactly one wins.
    let ap1 = id("ap1");
    let (a, b) = tokio::join!(
        s.consume_approval(&ap1, &hash, 300),
        ctx.second.consume_approval(&ap1, &hash, 300)
    );
    assert_eq!(
        usize::from(a.is_ok()) + usize::from(b.is_ok()),
        1,
        "{a:?} {b:?}"
    );
    assert_err!(
        s.consume_approval(&id("ap1"), &hash, 301).await,
        StoreError::ApprovalNotUsable {
            reason: "it was already used; an approval releases one call",
            ..
        }
    );
    assert_eq!(s.approval(&id("ap1")).await.unwrap().consumed_at, Some(300));
    assert_err!(
        s.consume_approval(&id("ghost"), &hash, 301).await,
        StoreError::NotFound { .. }
    );
}

async fn approval_decisions_are_final<S: Store>(ctx: Ctx<S>) {
    let s = ctx.store;
    s.register_agent(&new_agent("agt_a"), 1).await.unwrap();
    s.request_approval(&held_call("ap1", 500)).await.unwrap();
    let rejected = s
        .decide_approval(&id("ap1"), Verdict::Reject, "bob", 200)
        .await
        .unwrap();
    assert_eq!(rejected.state, ApprovalState::Rejected);
    assert_eq!(rejected.decided_by.as_deref(), Some("bob"));
    assert_err!(
        ctx.second
            .decide_approval(&id("ap1"), Verdict::Approve, "mallory", 201)
            .await,
        StoreError::ApprovalAlreadyDecided { .. }
    );
    assert_err!(
        s.consume_approval(&id("ap1"), &"c0".repeat(32), 202).await,
        StoreError::ApprovalNotUsable {
            reason: "it was rejected",
            ..
        }
    );
    s.request_approval(&held_call("ap2", 150)).await.unwrap();
    assert_err!(
        s.decide_approval(&id("ap2"), Verdict::Approve, "bob", 150)
            .await,
        StoreError::ApprovalNotUsable { .. }
    );
    assert_err!(
        s.decide_approval(&id("ghost"), Verdict::Approve, "bob", 1)
            .await,
        StoreError::NotFound { .. }
    );
}

async fn observations_filter_and_page<S: Store>(ctx: Ctx<S>) {
    let s = ctx.store;
    let mut ids = Vec::new();
    for (n, agent) in ["agt_a", "agt_b", "agt_a", "agt_a"].iter().enumerate() {
        let o = NewObservation {
            agent: id(agent),
            tool: id("files.read"),
            argument_shape: r#"{"path":"string"}"#.into(),
            decision: "allow".into(),
            observed_at: n as i64,
        };
        ids.push(s.record_observation(&o).await.unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let all = s.observations(None, 0, 100).await.unwrap();
    assert_eq!(all.len(), 4);
    let a: Vec<i64> = s
        .observations(Some(&id("agt_a")), 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(a, vec![ids[0], ids[2], ids[3]]);
    let page = s.observations(Some(&id("agt_a")), ids[0], 1).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, ids[2]);
    assert_eq!(page[0].observation.argument_shape, r#"{"path":"string"}"#);
}

async fn log_indices_stay_dense_under_concurrent_appends<S: Store>(ctx: Ctx<S>) {
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..40u32 {
        let store = if n % 2 == 0 {
            ctx.store.clone()
        } else {
            ctx.second.clone()
        };
        tasks.spawn(async move {
            let leaf = format!("receipt-{n}").into_bytes();
            (store.append_leaf(&leaf).await.unwrap(), leaf)
        });
    }
    let mut seen = Vec::new();
    while let Some(done) = tasks.join_next().await {
        seen.push(done.unwrap());
    }
    seen.sort();
    let indices: Vec<u64> = seen.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices, (0..40).collect::<Vec<_>>(), "no gaps, no repeats");
    assert_eq!(ctx.store.log_size().await.unwrap(), 40);
    for (index, leaf) in &seen {
        assert_eq!(&ctx.second.leaf(*index).await.unwrap(), leaf);
    }
    let range = ctx.store.leaves(38, 1_000).await.unwrap();
    assert_eq!(range, vec![seen[38].1.clone(), seen[39].1.clone()]);
    assert_err!(ctx.store.leaf(40).await, StoreError::NotFound { .. });
}

async fn checkpoints_cannot_be_rewritten<S: Store>(ctx: Ctx<S>) {
    let s = ctx.store;
    assert_eq!(s.latest_checkpoint().await.unwrap(), None);
    let early = StoredCheckpoint {
        size: 1,
        text: "size 1 root aa".into(),
    };
    assert_err!(s.put_checkpoint(&early).await, StoreError::Invalid { .. });
    for n in 0..3u8 {
        s.append_leaf(&[n]).await.unwrap();
    }
    s.put_checkpoint(&early).await.unwrap();
    s.put_checkpoint(&early).await.unwrap();
    let forged = StoredCheckpoint {
        size: 1,
        text: "size 1 root bb".into(),
    };
    assert_err!(
        ctx.second.put_checkpoint(&forged).await,
        StoreError::ConflictingCheckpoint { size: 1 }
    );
    let later = StoredCheckpoint {
        size: 3,
        text: "size 3 root cc".into(),
    };
    s.put_checkpoint(&later).await.unwrap();
    assert_eq!(s.latest_checkpoint().await.unwrap(), Some(later));
    assert_eq!(s.checkpoint(1).await.unwrap(), early);
    assert_err!(s.checkpoint(2).await, StoreError::NotFound { .. });
}

/// Polls until `check` holds or the bound passes; the bound is a liveness
/// limit, not a speed assertion.
async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

async fn revocation_follower_sees_revocations_from_another_pool<S: Store>(ctx: Ctx<S>) {
    let writer = ctx.store;
    writer
        .revoke(
            &target(RevocationKind::Kid, "old-key"),
            "rotated",
            "admin",
            1,
        )
        .await
        .unwrap();
    // A short poll: on SQLite another pool has no broadcast, so the timer is
    // what carries the revocation across; on PostgreSQL it is NOTIFY.
    let follower = RevocationFollower::start(ctx.second.clone(), Duration::from_millis(200))
        .await
        .unwrap();
    let set = follower.revocations().clone();
    assert_eq!(set.epoch(), 1, "the initial load catches up");
    let facts = RemitFacts {
        chain: &["root", "child"],
        agent: "agt_a",
        sub: "alice",
        kids: &["new-key"],
        tool: None,
    };
    assert!(set.find(&facts).is_none());
    writer
        .revoke(
            &target(RevocationKind::Subtree, "root"),
            "incident",
            "admin",
            2,
        )
        .await
        .unwrap();
    assert!(
        eventually(|| set.find(&facts).is_some()).await,
        "the other pool's set never saw the revocation"
    );
    assert_eq!(set.epoch(), 2);
}

/// A follower with a timer too slow to matter still sees a revocation made
/// through the same store at once: the signal path works on its own.
mod signal_path {
    use super::*;

    async fn body<S: Store>(ctx: Ctx<S>, writer: S) {
        let follower = RevocationFollower::start(ctx.store.clone(), Duration::from_secs(3_600))
            .await
            .unwrap();
        let set = follower.revocations().clone();
        writer
            .revoke(&target(RevocationKind::Agent, "agt_x"), "r", "admin", 1)
            .await
            .unwrap();
        let facts = RemitFacts {
            chain: &["j"],
            agent: "agt_x",
            sub: "s",
            kids: &[],
            tool: None,
        };
        assert!(
            eventually(|| set.find(&facts).is_some()).await,
            "the signal never arrived"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_broadcast_reaches_a_follower_of_the_same_store() {
        crate::harness::sqlite_case(|ctx: Ctx<SqliteStore>| async move {
            let writer = ctx.store.clone();
            body(ctx, writer).await;
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_notify_reaches_a_follower_on_another_pool() {
        crate::harness::postgres_case(|ctx: Ctx<PgStore>| async move {
            let writer = ctx.second.clone();
            body(ctx, writer).await;
        })
        .await;
    }
}

/// Kill the follower's LISTEN connection, then revoke at once: whether the
/// revocation lands before or after the listener reconnects, the follower
/// (whose timer is an hour) must still see it: NOTIFY on the new
/// connection, or the catch-up read that follows every reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_follower_survives_a_killed_listener_connection() {
    harness::postgres_case(|ctx: Ctx<PgStore>| async move {
        let follower = RevocationFollower::start(ctx.second.clone(), Duration::from_secs(3_600))
            .await
            .unwrap();
        let set = follower.revocations().clone();
        let schema = ctx.store.schema().unwrap().to_owned();
        let url = harness::postgres_url().unwrap();
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        let (killed,): (i64,) = sqlx::query_as(
            "SELECT count(pg_terminate_backend(pid, 5000))::BIGINT FROM pg_stat_activity \
             WHERE application_name = $1 AND query LIKE 'LISTEN%'",
        )
        .bind(format!("remit {schema}"))
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert_eq!(killed, 1, "exactly the follower's listener is killed");
        ctx.store
            .revoke(&target(RevocationKind::Sub, "mallory"), "r", "admin", 1)
            .await
            .unwrap();
        let facts = RemitFacts {
            chain: &["j"],
            agent: "a",
            sub: "mallory",
            kids: &[],
            tool: None,
        };
        assert!(
            eventually(|| set.find(&facts).is_some()).await,
            "a replica kept honouring a revoked remit after losing its listener"
        );
    })
    .await;
}

// ---- token exchange: revocations propagate to exchanged roots --------------

/// Direct SQL on the test database, to leave it as an older Remit that
/// crashed between a revocation and its propagation would have.
trait RawSql {
    fn execute(&self, sql: &str) -> impl std::future::Future<Output = ()> + Send;
}

/// The statements of `sql`, one by one (none of ours has `;` in a literal).
fn statements(sql: &str) -> Vec<String> {
    sql.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl RawSql for SqliteStore {
    async fn execute(&self, sql: &str) {
        use sqlx::Connection as _;
        let url = format!("sqlite://{}", self.path().display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        for statement in statements(sql) {
            sqlx::query(&statement).execute(&mut conn).await.unwrap();
        }
    }
}

impl RawSql for PgStore {
    async fn execute(&self, sql: &str) {
        use sqlx::Connection as _;
        let url = harness::postgres_url().unwrap();
        let schema = self.schema().unwrap();
        let sql = format!("SET search_path TO \"{schema}\"; {sql}");
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        for statement in statements(&sql) {
            sqlx::query(&statement).execute(&mut conn).await.unwrap();
        }
    }
}

fn link(jti: &str, agent: &str, kid: &str) -> ExchangeLink {
    ExchangeLink {
        jti: id(jti),
        agent: id(agent),
        kid: id(kid),
    }
}

/// planner holds root r1 (issuer key k-issuer) and delegated c1 to helper
/// with its key k-planner; x1 was exchanged from r1~c1, and x2 from x1's
/// chain (x1 signed by k-issuer, its child xc1 by custody key k-custody1).
async fn two_exchanges<S: Store>(s: &S) {
    for agent in ["planner", "helper", "reader", "writer"] {
        s.register_agent(&new_agent(agent), 1_000).await.unwrap();
    }
    let r1 = root_remit("r1", "planner", None);
    s.record_remit(&r1).await.unwrap();
    s.record_remit(&child_remit("c1", &r1)).await.unwrap();
    s.record_remit(&root_remit("x1", "helper", None))
        .await
        .unwrap();
    let written = s
        .record_exchange(
            &id("x1"),
            &[
                link("r1", "planner", "k-issuer"),
                link("c1", "helper", "k-planner"),
            ],
            1_000,
        )
        .await
        .unwrap();
    assert!(written.is_empty(), "nothing revoked yet: {written:?}");
    s.record_remit(&root_remit("x2", "reader", None))
        .await
        .unwrap();
    s.record_exchange(
        &id("x2"),
        &[
            link("x1", "helper", "k-issuer"),
            link("xc1", "reader", "k-custody1"),
        ],
        1_000,
    )
    .await
    .unwrap();
    // An unrelated root, to show nothing else is touched.
    s.record_remit(&root_remit("y1", "writer", None))
        .await
        .unwrap();
    s.record_exchange(&id("y1"), &[link("r9", "writer", "k-other")], 1_000)
        .await
        .unwrap();
}

/// Issue 22 item 5: exchanging a chain must not open a fresh risk budget.
/// x1 was exchanged from planner's r1 delegated to helper: helper's budget
/// paid for that subject, so it pays for x1; x2 was exchanged from x1's
/// chain, so it pays from x1's payer too (the top of the custody tree),
/// not from reader's or the custody key's agent.
async fn an_exchanged_root_spends_the_risk_of_the_agent_that_paid_for_its_subject<S: Store>(
    ctx: Ctx<S>,
) {
    let s = ctx.store;
    two_exchanges(&s).await;
    assert_eq!(s.risk_payer(&id("r1")).await.unwrap(), None);
    assert_eq!(s.risk_payer(&id("x1")).await.unwrap(), Some(id("helper")));
    assert_eq!(s.risk_payer(&id("x2")).await.unwrap(), Some(id("helper")));
    assert_eq!(s.risk_payer(&id("y1")).await.unwrap(), Some(id("writer")));
    // Another replica reads the same payers (nothing is process-local).
    assert_eq!(
        ctx.second.risk_payer(&id("x2")).await.unwrap(),
        Some(id("helper"))
    );
    // Spending through the exchanged chains draws on the one budget: two
    // calls of 6 within a limit of 10 cannot both pass, whichever root.
    // (x2's subject chain is x1 and its custody child xc1, as a gateway
    // records it on first use.)
    let x1 = s.remit(&id("x1")).await.unwrap();
    s.record_remit(&child_remit("xc1", &x1)).await.unwrap();
    let spend = |amount| RiskSpend {
        agent: id("helper"),
        window_start: 0,
        amount,
        limit: 10,
    };
    s.consume_call(&[id("x1")], Some(&spend(6))).await.unwrap();
    let refused = ctx
        .second
        .consume_call(&[id("x2")], Some(&spend(6)))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, StoreError::RiskBudgetExhausted { .. }),
        "{refused:?}"
    );
}

fn subtree_values(list: &[Revocation]) -> Vec<String> {
    list.iter()
        .map(|r| {
            assert_eq!(r.target.kind, RevocationKind::Subtree, "{r:?}");
            r.target.value.to_string()
        })
        .collect()
}

async fn a_revocation_reaching_a_subject_link_revokes_the_exchanged_root_in_the_same_write<
    S: Store,
>(
    ctx: Ctx<S>,
) {
    let s = ctx.store;
    two_exchanges(&s).await;
    // Revoking the key that signed c1 (not the issuer key) reaches x1 and,
    // through x1's chain, x2: in one write, with dense epochs.
    let done = s
        .revoke(
            &target(RevocationKind::Kid, "k-planner"),
            "leaked",
            "admin",
            2_000,
        )
        .await
        .unwrap();
    assert!(done.newly_revoked);
    assert_eq!(done.revocation.epoch, 1);
    assert_eq!(subtree_values(&done.propagated), ["x1", "x2"]);
    assert_eq!(
        done.propagated.iter().map(|r| r.epoch).collect::<Vec<_>>(),
        [2, 3]
    );
    assert!(done.propagated[0].reason.contains("kid k-planner"));
    assert_eq!(done.propagated[0].revoked_by, "exchange");
    assert_eq!(ctx.second.revocation_epoch().await.unwrap(), 3);
    let all = ctx.second.revocations_since(0).await.unwrap();
    assert_eq!(all.len(), 3, "y1 is untouched: {all:?}");
    // Revoking again repairs nothing and uses no epoch.
    let again = ctx
        .second
        .revoke(
            &target(RevocationKind::Kid, "k-planner"),
            "again",
            "admin",
            3_000,
        )
        .await
        .unwrap();
    assert!(!again.newly_revoked && again.propagated.is_empty());
    assert_eq!(s.revocation_epoch().await.unwrap(), 3);
    // Agent and subtree revocations reach exchanged roots the same way.
    let agent = s
        .revoke(
            &target(RevocationKind::Agent, "writer"),
            "gone",
            "admin",
            4_000,
        )
        .await
        .unwrap();
    assert_eq!(subtree_values(&agent.propagated), ["y1"]);
    assert_eq!(
        s.exchanged_under(RevocationKind::Kid, &id("k-custody1"))
            .await
            .unwrap(),
        vec![id("x2")]
    );
    // A kind that names no link propagates nothing.
    let sub = s
        .revoke(&target(RevocationKind::Sub, "alice"), "r", "admin", 5_000)
        .await
        .unwrap();
    assert!(sub.propagated.is_empty());
}

async fn an_exchange_recorded_after_the_revocation_is_revoked_with_it<S: Store>(ctx: Ctx<S>) {
    let s = ctx.store;
    for agent in ["planner", "helper"] {
        s.register_agent(&new_agent(agent), 1_000).await.unwrap();
    }
    s.record_remit(&root_remit("r1", "planner", None))
        .await
        .unwrap();
    s.revoke(&target(RevocationKind::Kid, "k-late"), "r", "admin", 1_500)
        .await
        .unwrap();
    s.record_remit(&root_remit("x1", "helper", None))
        .await
        .unwrap();
    // The exchange raced the revocation and lost: recording its links
    // revokes its root at once, whichever replica writes it.
    let written = ctx
        .second
        .record_exchange(&id("x1"), &[link("r1", "planner", "k-late")], 2_000)
        .await
        .unwrap();
    assert_eq!(subtree_values(&written), ["x1"]);
    assert_eq!(written[0].epoch, 2);
    assert_eq!(s.revocation_epoch().await.unwrap(), 2);
}

async fn a_revocation_left_without_its_propagation_is_repaired<S: Store + RawSql>(ctx: Ctx<S>) {
    let s = ctx.store;
    two_exchanges(&s).await;
    assert!(s.repair_propagation(2_000).await.unwrap().is_empty());
    // What an older Remit left when it crashed after writing a revocation
    // and before propagating it: the row and its epoch, nothing else.
    s.execute(
        "UPDATE revocation_epoch SET epoch = 1 WHERE id = 1; \
         INSERT INTO revocations (kind, value, epoch, reason, revoked_by, revoked_at) \
         VALUES ('subtree', 'r1', 1, 'crashed before propagating', 'admin', 1500);",
    )
    .await;
    assert_eq!(s.revocations_since(0).await.unwrap().len(), 1);
    // The repair (run by the server at start and on its timer) writes the
    // missing propagation, transitively, once.
    let repaired = ctx.second.repair_propagation(2_000).await.unwrap();
    assert_eq!(subtree_values(&repaired), ["x1", "x2"]);
    assert_eq!(repaired.iter().map(|r| r.epoch).collect::<Vec<_>>(), [2, 3]);
    assert!(repaired[0].reason.contains("subtree r1"));
    assert!(s.repair_propagation(3_000).await.unwrap().is_empty());
    assert_eq!(s.revocation_epoch().await.unwrap(), 3);
    // Revoking the same target again would have repaired it too.
    s.execute(
        "UPDATE revocation_epoch SET epoch = 4 WHERE id = 1; \
         INSERT INTO revocations (kind, value, epoch, reason, revoked_by, revoked_at) \
         VALUES ('agent', 'writer', 4, 'crashed before propagating', 'admin', 1600);",
    )
    .await;
    let again = s
        .revoke(
            &target(RevocationKind::Agent, "writer"),
            "again",
            "admin",
            4_000,
        )
        .await
        .unwrap();
    assert!(!again.newly_revoked);
    assert_eq!(again.revocation.reason, "crashed before propagating");
    assert_eq!(subtree_values(&again.propagated), ["y1"]);
    assert_eq!(again.propagated[0].epoch, 5);
}

async fn a_single_use_assertion_is_refused_while_it_lives_and_forgotten_after<S: Store>(
    ctx: Ctx<S>,
) {
    let (a, b) = (id("agt_a"), id("agt_b"));
    ctx.store
        .use_assertion(&a, "dpop:p1", 100, 10)
        .await
        .unwrap();
    // Another replica sees the first use, up to and including expiry.
    for now in [11, 100] {
        assert_err!(
            ctx.second.use_assertion(&a, "dpop:p1", 100, now).await,
            StoreError::Duplicate { .. }
        );
    }
    // The same jti of another agent is another assertion.
    ctx.second
        .use_assertion(&b, "dpop:p1", 100, 20)
        .await
        .unwrap();
    // Once expired it is forgotten (expiry refuses the assertion itself),
    // and recorded again until its new expiry.
    ctx.second
        .use_assertion(&a, "dpop:p1", 300, 101)
        .await
        .unwrap();
    assert_err!(
        ctx.store.use_assertion(&a, "dpop:p1", 300, 250).await,
        StoreError::Duplicate { .. }
    );
}
