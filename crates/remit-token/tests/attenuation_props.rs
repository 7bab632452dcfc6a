//! Property tests: random narrowings verify and never authorize a call the
//! parent would refuse; random widenings are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use proptest::prelude::*;
use remit_token::{
    authorize_call, delegate, Call, Classification, DelegateRequest, Grant, MintRequest, Signer,
    UnverifiedChain, VerifiedChain,
};
use serde_json::{json, Value};

const TOOLS: [&str; 4] = ["fs.read", "fs.write", "net.get", "db.query"];
const RESOURCES: [&str; 7] = [
    "/tmp/a/x",
    "/tmp/b",
    "/srv/y",
    "/tmp/a/",
    "/tmp/a/x/y",
    "/tmp/a/../../srv/y",
    "/tmp/a/%2e%2e/b",
];
const ACTIONS: [&str; 2] = ["read", "write"];
const PATHS: [&str; 7] = [
    "/tmp/a/1",
    "/tmp/b/2",
    "/etc/passwd",
    "/tmp/ab",
    "/tmp/a/../../etc/passwd",
    "/tmp//a/./1/",
    "/tmp/a/\u{ff0e}\u{ff0e}/x",
];
const CLASSES: [Classification; 4] = [
    Classification::Public,
    Classification::Internal,
    Classification::Confidential,
    Classification::Restricted,
];

#[derive(Debug, Clone)]
struct ParentSpec {
    tools: Vec<&'static str>,
    resources: Option<Vec<&'static str>>,
    actions: Option<Vec<&'static str>>,
    path_prefix: Option<&'static str>,
    range: Option<(i64, i64)>,
    class: usize,
    steps: Option<u64>,
}

fn parent_spec() -> impl Strategy<Value = ParentSpec> {
    (
        prop::sample::subsequence(vec!["fs.*", "net.get", "db.query", "*"], 1..=2),
        prop::option::of(prop::sample::subsequence(
            vec!["/tmp/*", "/tmp/a/*", "/srv/*", "/tmp/**"],
            1..=2,
        )),
        prop::option::of(prop::sample::subsequence(ACTIONS.to_vec(), 1..=2)),
        prop::option::of(prop::sample::select(vec!["/tmp/", "/tmp/a/"])),
        prop::option::of((0i64..50, 50i64..100)),
        1usize..4,
        prop::option::of(2u64..50),
    )
        .prop_map(
            |(tools, resources, actions, path_prefix, range, class, steps)| ParentSpec {
                tools,
                resources,
                actions,
                path_prefix,
                range,
                class,
                steps,
            },
        )
}

fn grant_json(
    tools: &[&str],
    resources: &Option<Vec<&str>>,
    actions: &Option<Vec<&str>>,
    prefix: Option<&str>,
    range: Option<(i64, i64)>,
) -> Grant {
    let mut g = json!({"type": "remit_tool", "tools": tools});
    if let Some(r) = resources {
        g["resources"] = json!(r);
    }
    if let Some(a) = actions {
        g["actions"] = json!(a);
    }
    let mut args = serde_json::Map::new();
    if let Some(p) = prefix {
        args.insert("path".into(), json!({"prefix": p}));
    }
    if let Some((lo, hi)) = range {
        args.insert("n".into(), json!({"range": {"min": lo, "max": hi}}));
    }
    if !args.is_empty() {
        g["args"] = Value::Object(args);
    }
    serde_json::from_value(g).unwrap()
}

/// Choices that turn a parent spec into a narrower child.
#[derive(Debug, Clone)]
struct Narrowing {
    tool_pick: usize,
    concretize: bool,
    resource_pick: usize,
    action_pick: usize,
    extend_prefix: bool,
    shrink: (i64, i64),
    class_drop: usize,
    steps_drop: u64,
    add_constraint: bool,
}

fn narrowing() -> impl Strategy<Value = Narrowing> {
    (
        any::<usize>(),
        any::<bool>(),
        any::<usize>(),
        any::<usize>(),
        any::<bool>(),
        (0i64..20, 0i64..20),
        0usize..3,
        0u64..3,
        any::<bool>(),
    )
        .prop_map(
            |(
                tool_pick,
                concretize,
                resource_pick,
                action_pick,
                extend_prefix,
                shrink,
                class_drop,
                steps_drop,
                add_constraint,
            )| {
                Narrowing {
                    tool_pick,
                    concretize,
                    resource_pick,
                    action_pick,
                    extend_prefix,
                    shrink,
                    class_drop,
                    steps_drop,
                    add_constraint,
                }
            },
        )
}

fn concrete(pattern: &'static str, pick: usize) -> &'static str {
    let matching: Vec<&'static str> = TOOLS
        .iter()
        .copied()
        .filter(|t| remit_token::Pattern::try_from(pattern).unwrap().matches(t))
        .collect();
    if matching.is_empty() {
        pattern
    } else {
        matching[pick % matching.len()]
    }
}

fn narrow(p: &ParentSpec, n: &Narrowing) -> (Grant, Classification, Option<u64>) {
    let base = p.tools[n.tool_pick % p.tools.len()];
    let tool = if n.concretize {
        concrete(base, n.tool_pick)
    } else {
        base
    };
    let resources = match &p.resources {
        None if n.resource_pick % 2 == 0 => None,
        None => Some(vec!["/tmp/a/*"]),
        Some(r) => match r[n.resource_pick % r.len()] {
            "/tmp/**" if n.extend_prefix => Some(vec!["/tmp/a/**"]),
            one => Some(vec![one]),
        },
    };
    let actions = p.actions.as_ref().map(|a| vec![a[n.action_pick % a.len()]]);
    let prefix = match p.path_prefix {
        Some("/tmp/") if n.extend_prefix => Some("/tmp/a/"),
        Some(x) => Some(x),
        None if n.add_constraint => Some("/tmp/b/"),
        None => None,
    };
    let range = p.range.map(|(lo, hi)| {
        let lo2 = (lo + n.shrink.0).min(hi);
        let hi2 = (hi - n.shrink.1).max(lo2);
        (lo2, hi2)
    });
    let class = CLASSES[p.class.saturating_sub(n.class_drop)];
    let steps = p.steps.map(|s| s.saturating_sub(n.steps_drop).max(1));
    (
        grant_json(&[tool], &resources, &actions, prefix, range),
        class,
        steps,
    )
}

fn calls() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    let mut out = Vec::new();
    for tool in TOOLS {
        for resource in RESOURCES {
            for action in ACTIONS {
                for (i, path) in PATHS.iter().enumerate() {
                    out.push((
                        tool,
                        resource,
                        action,
                        json!({"path": path, "n": i as i64 * 30}),
                    ));
                }
            }
        }
    }
    out
}

fn allowed(chain: &VerifiedChain, c: &(&str, &str, &str, Value)) -> bool {
    authorize_call(
        chain,
        &Call {
            tool: c.0,
            resource: Some(c.1),
            action: Some(c.2),
            args: &c.3,
        },
    )
    .is_ok()
}

fn mint_parent(
    p: &ParentSpec,
    issuer: &dyn Signer,
    holder: &dyn Signer,
) -> remit_token::UnverifiedRemit {
    let g = grant_json(&p.tools, &p.resources, &p.actions, p.path_prefix, p.range);
    let mut req = MintRequest::new("alice", "planner", holder.public_jwk().clone(), vec![g]);
    req.ttl_secs = 600;
    req.class = CLASSES[p.class];
    req.max_steps = p.steps;
    remit_token::mint(issuer, &req, NOW).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn narrowings_verify_and_never_exceed_the_parent(p in parent_spec(), n in narrowing()) {
        let (issuer, a, b) = (key(), key(), key());
        let jwks = jwks_for(&issuer);
        let root = mint_parent(&p, &issuer, &a);
        let (grant, class, steps) = narrow(&p, &n);
        let mut req = DelegateRequest::new("worker", b.public_jwk().clone(), vec![grant]);
        req.class = Some(class);
        req.max_steps = steps;
        let child = delegate(&single(&root), &a, &req, NOW).unwrap();
        let parent_chain = VerifiedChain::verify_text(root.compact(), &jwks, &opts()).unwrap();
        let chain = VerifiedChain::verify_text(&join(&[&root, &child]), &jwks, &opts()).unwrap();
        let (pa, ca) = (parent_chain.authority(), chain.authority());
        prop_assert!(ca.class <= pa.class);
        prop_assert!(ca.exp <= pa.exp && ca.nbf >= pa.nbf);
        let steps_ok = match (ca.max_steps, pa.max_steps) {
            (_, None) => true,
            (Some(c), Some(p)) => c <= p,
            _ => false,
        };
        prop_assert!(steps_ok);
        for call in calls() {
            if allowed(&chain, &call) {
                prop_assert!(allowed(&parent_chain, &call), "child allows {:?} but parent does not", call);
            }
        }
    }

    #[test]
    fn widenings_are_refused(p in parent_spec(), n in narrowing(), which in 0usize..8) {
        let (issuer, a, b) = (key(), key(), key());
        let jwks = jwks_for(&issuer);
        let root = mint_parent(&p, &issuer, &a);
        let (grant, class, steps) = narrow(&p, &n);
        let mut req = DelegateRequest::new("worker", b.public_jwk().clone(), vec![grant]);
        req.class = Some(class);
        req.max_steps = steps;
        let child = delegate(&single(&root), &a, &req, NOW).unwrap();
        let mut claims = claims_json(&child);
        let g = &mut claims["authorization_details"][0];
        let applicable = match which {
            0 => { g["tools"] = json!(["shell.exec"]); !p.tools.contains(&"*") }
            1 => match &p.resources {
                Some(_) => { g.as_object_mut().unwrap().remove("resources"); true }
                None => false,
            },
            2 => match &p.actions {
                Some(_) => { g.as_object_mut().unwrap().remove("actions"); true }
                None => false,
            },
            3 => match p.range {
                Some((lo, hi)) => { g["args"]["n"] = json!({"range": {"min": lo - 1, "max": hi}}); true }
                None => false,
            },
            4 => { claims["exp"] = json!(root.claims().exp + 1); true }
            7 => match &p.resources {
                // `*` never crosses `/`: a subtree is wider than one level.
                Some(r) if !r.contains(&"/tmp/**") => { g["resources"] = json!(["/tmp/a/**"]); true }
                _ => false,
            },
            5 => if p.class < 3 { claims["class"] = json!(CLASSES[p.class + 1]); true } else { false },
            _ => match p.steps {
                Some(s) => { claims["max_steps"] = json!(s + 1); true }
                None => false,
            },
        };
        prop_assume!(applicable);
        let forged = forge(&claims, a.thumbprint().as_str(), &a);
        let text = format!("{}~{forged}", root.compact());
        let err = VerifiedChain::verify_text(&text, &jwks, &opts()).unwrap_err();
        prop_assert_eq!(err.link(), Some(1));
        let _ = UnverifiedChain::parse(&text).unwrap();
    }
}

/// Patterns and names over a small alphabet where `*`, `**` and `/` meet.
fn glob_text(max: usize, wild: bool) -> impl Strategy<Value = String> {
    let atoms: Vec<&'static str> = if wild {
        vec!["a", "b", "/", "*", "**"]
    } else {
        vec!["a", "b", "/"]
    };
    prop::collection::vec(prop::sample::select(atoms), 0..max).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// `covers` is sound: whenever it says yes, no name the narrower pattern
    /// matches escapes the wider one.
    #[test]
    fn covers_never_admits_an_escaping_expansion(
        wide in glob_text(6, true),
        narrow in glob_text(6, true),
        names in prop::collection::vec(glob_text(8, false), 64),
    ) {
        let (Ok(wide), Ok(narrow)) = (
            remit_token::Pattern::try_from(wide),
            remit_token::Pattern::try_from(narrow),
        ) else {
            return Ok(());
        };
        if wide.covers(&narrow) {
            for name in &names {
                prop_assert!(
                    !narrow.matches(name) || wide.matches(name),
                    "{wide} covers {narrow} but {name:?} escapes"
                );
            }
            // The narrower pattern read as a name (its stars as letters).
            let as_name = narrow.canonical().as_str().replace('*', "a");
            prop_assert!(wide.matches(&as_name), "{wide} covers {narrow} but not {as_name}");
        }
    }
}
