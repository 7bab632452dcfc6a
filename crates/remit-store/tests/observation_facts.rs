//! Observations with drafting facts (issue 26, migration 0007), on SQLite
//! and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod harness;

use remit_store::*;

fn id(text: &str) -> Id {
    Id::parse("test id", text).unwrap()
}

fn observation(agent: &str, at: i64) -> NewObservation {
    NewObservation {
        agent: id(agent),
        tool: id("fs/read_file"),
        argument_shape: r#"{"path":"string"}"#.into(),
        decision: "allow".into(),
        observed_at: at,
    }
}

both_backends!(facts_round_trip_windowed_and_bounded_per_agent);

async fn facts_round_trip_windowed_and_bounded_per_agent<S: Store>(ctx: harness::Ctx<S>) {
    let s = ctx.store;
    // an observation recorded the old way has no facts
    s.record_observation(&observation("agt_a", 5))
        .await
        .unwrap();
    for at in 10..20 {
        let facts = format!(r#"{{"args":{{"text":{{"path#dir":"/repo/{at}/"}}}}}}"#);
        s.record_observation_facts(&observation("agt_a", at), &facts)
            .await
            .unwrap();
        s.record_observation_facts(&observation("agt_b", at), "{}")
            .await
            .unwrap();
    }
    let all = s.observed_facts(&id("agt_a"), 0, 100).await.unwrap();
    assert_eq!(all.len(), 11);
    assert_eq!(all[0].facts, None);
    assert!(all[1].facts.as_deref().unwrap().contains("/repo/10/"));
    assert!(all
        .windows(2)
        .all(|w| w[0].observation.id < w[1].observation.id));
    // the window: since, and the newest `limit`
    let recent = s.observed_facts(&id("agt_a"), 15, 3).await.unwrap();
    let ats: Vec<i64> = recent
        .iter()
        .map(|o| o.observation.observation.observed_at)
        .collect();
    assert_eq!(ats, vec![17, 18, 19]);
    // bounded per agent: pruning one agent leaves the other alone
    assert_eq!(s.prune_observations(&id("agt_a"), 4).await.unwrap(), 7);
    let kept = s.observed_facts(&id("agt_a"), 0, 100).await.unwrap();
    let ats: Vec<i64> = kept
        .iter()
        .map(|o| o.observation.observation.observed_at)
        .collect();
    assert_eq!(ats, vec![16, 17, 18, 19]);
    assert_eq!(
        s.observed_facts(&id("agt_b"), 0, 100).await.unwrap().len(),
        10
    );
    assert_eq!(s.prune_observations(&id("agt_a"), 10).await.unwrap(), 0);
}
