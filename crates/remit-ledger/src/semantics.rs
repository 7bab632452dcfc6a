//! What a log *means*, checked over the whole log: the decisions it
//! records must agree with the revocations, limits, approvals and policy
//! promotions it also records.
//!
//! Integrity ([`crate::audit`]) says the log is the one the gateway wrote;
//! these checks say the gateway kept its own rules while writing it. Each
//! violation names the receipt index where the rule broke:
//!
//! | code | rule |
//! |---|---|
//! | `allow_after_revocation` | no `allow` that a revocation covers was decided after it: when both carry a `revocation_epoch`, the allow's epoch is below the revocation's (the decision did not see it yet); otherwise the allow comes before the revocation in the log |
//! | `steps_over_limit` | no remit allowed more calls than its `max_steps` (counted over every chain that holds it, from the `chain` records) |
//! | `approval_reused` | an approval id is on one `allow` at most (approvals are one-shot) |
//! | `approval_not_granted` | an `allow` that names an approval comes after that approval's `approve` receipt, and no `reject` of it |
//! | `policy_version_not_promoted` | once a `promote` receipt names a policy version, every decision after it records that version (until the next promotion) |
//! | `bad_chain_record` | a `chain` record's `chain` is the hash of its links |
//!
//! A revocation covers an allow when it names the allow's leaf `jti`
//! (`revoke.jti:`), any link of its chain (`revoke.subtree:`; the links
//! come from the chain record, else the root and leaf `jti`), one of its
//! agents (`revoke.agent:`, `agent.disable:`), its user (`revoke.sub:`),
//! its tool (`revoke.tool:`), a key that signed a link (`revoke.kid:`, from
//! the chain record) or its server (`server.disable:`).

use std::collections::{BTreeMap, HashMap, HashSet};

use remit_token::remit::UnverifiedRemit;

use crate::receipt::{ActorKind, Kind, Receipt};

/// One broken rule, at the receipt where it broke.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// The receipt index.
    pub index: u64,
    /// The rule (see the module doc).
    pub code: &'static str,
    /// What was found, in words.
    pub detail: String,
}

/// What a revocation receipt names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Jti(String),
    Subtree(String),
    Agent(String),
    Sub(String),
    Tool(String),
    Kid(String),
    Server(String),
}

impl Target {
    /// The target of a `revoke` receipt's action (`tool`).
    fn of(action: &str) -> Option<Self> {
        let (what, value) = action.split_once(':')?;
        let value = value.to_owned();
        Some(match what {
            "revoke.jti" => Target::Jti(value),
            "revoke.subtree" => Target::Subtree(value),
            "revoke.agent" | "agent.disable" => Target::Agent(value),
            "revoke.sub" => Target::Sub(value),
            "revoke.tool" => Target::Tool(value),
            "revoke.kid" => Target::Kid(value),
            "server.disable" => Target::Server(value),
            _ => return None,
        })
    }
}

/// A chain record's links as the checks need them.
#[derive(Debug, Default)]
struct ChainInfo {
    /// Each link's `jti` and `max_steps`, root first.
    links: Vec<(String, Option<u64>)>,
    /// Each link's signing key id.
    kids: Vec<String>,
}

impl ChainInfo {
    fn of(links: &[String]) -> Self {
        let mut info = ChainInfo::default();
        for link in links {
            // Parsing reads claims; verifying them is the auditor's
            // separate step (issuer JWKS and each parent's `cnf.jwk`).
            if let Ok(remit) = UnverifiedRemit::parse(link) {
                let claims = remit.claims();
                info.links.push((claims.jti.clone(), claims.max_steps));
                info.kids.push(remit.kid().to_owned());
            }
        }
        info
    }
}

#[derive(Debug)]
struct Revocation {
    index: u64,
    epoch: Option<u64>,
    target: Target,
}

#[derive(Debug)]
struct Allowed {
    index: u64,
    epoch: Option<u64>,
    receipt: Receipt,
}

/// Collects a log's receipts in order, then checks them all
/// ([`Semantics::finish`]).
#[derive(Debug, Default)]
pub struct Semantics {
    chains: HashMap<String, ChainInfo>,
    revocations: Vec<Revocation>,
    allows: Vec<Allowed>,
    violations: Vec<Violation>,
    approved: HashMap<String, u64>,
    rejected: HashSet<String>,
    approvals_used: HashMap<String, u64>,
    promoted: Option<(u64, String)>,
}

impl Semantics {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next receipt of the log (in index order).
    pub fn push(&mut self, receipt: &Receipt) {
        let (index, e) = (receipt.index, &receipt.event);
        if let Err(err) = e.check() {
            self.flag(index, "bad_chain_record", err.to_string());
        }
        match e.kind {
            Kind::Chain => {
                if let Some(chain) = &e.chain {
                    self.chains
                        .insert(chain.as_str().to_owned(), ChainInfo::of(&e.links));
                }
            }
            Kind::Revoke => {
                if let Some(target) = e.tool.as_deref().and_then(Target::of) {
                    self.revocations.push(Revocation {
                        index,
                        epoch: e.revocation_epoch,
                        target,
                    });
                }
            }
            Kind::Approve | Kind::Reject => {
                if let Some(approval) = &e.approval {
                    if e.kind == Kind::Approve {
                        self.approved.entry(approval.id.clone()).or_insert(index);
                    } else {
                        self.rejected.insert(approval.id.clone());
                    }
                }
            }
            Kind::Promote => {
                if let Some(d) = &e.decision {
                    self.promoted = Some((index, d.policy_version.clone()));
                }
            }
            Kind::Allow if !e.unverified => {
                self.check_approval(receipt);
                self.allows.push(Allowed {
                    index,
                    epoch: e.revocation_epoch,
                    receipt: receipt.clone(),
                });
            }
            _ => {}
        }
        self.check_promoted(receipt);
    }

    fn flag(&mut self, index: u64, code: &'static str, detail: String) {
        self.violations.push(Violation {
            index,
            code,
            detail,
        });
    }

    fn check_approval(&mut self, receipt: &Receipt) {
        let Some(approval) = &receipt.event.approval else {
            return;
        };
        let (index, id) = (receipt.index, approval.id.clone());
        if let Some(first) = self.approvals_used.insert(id.clone(), index) {
            self.flag(
                index,
                "approval_reused",
                format!("approval {id} was already used by receipt {first}"),
            );
        }
        let granted = self.approved.get(&id).is_some_and(|&at| at < index);
        if !granted || self.rejected.contains(&id) {
            self.flag(
                index,
                "approval_not_granted",
                format!("approval {id} has no earlier approve receipt, or was rejected"),
            );
        }
    }

    fn check_promoted(&mut self, receipt: &Receipt) {
        let Some((at, promoted)) = &self.promoted else {
            return;
        };
        let e = &receipt.event;
        let decided = matches!(e.kind, Kind::Allow | Kind::Deny | Kind::Escalate);
        let Some(version) = e.decision.as_ref().map(|d| d.policy_version.as_str()) else {
            return;
        };
        if decided && !e.unverified && !version.is_empty() && version != promoted {
            let detail = format!("decided under {version}, but receipt {at} promoted {promoted}");
            self.flag(receipt.index, "policy_version_not_promoted", detail);
        }
    }

    /// Every violation, by receipt index.
    pub fn finish(mut self) -> Vec<Violation> {
        let allows = std::mem::take(&mut self.allows);
        let mut steps: BTreeMap<String, u64> = BTreeMap::new();
        for allowed in &allows {
            self.check_revocations(allowed);
            self.count_steps(allowed, &mut steps);
        }
        self.violations.sort_by_key(|v| v.index);
        self.violations
    }

    fn chain_of(&self, receipt: &Receipt) -> Option<&ChainInfo> {
        let chain = receipt.event.chain.as_ref()?;
        self.chains.get(chain.as_str())
    }

    fn covers(&self, target: &Target, receipt: &Receipt) -> bool {
        let e = &receipt.event;
        let chain = self.chain_of(receipt);
        let is = |v: &str, field: &Option<String>| field.as_deref() == Some(v);
        match target {
            Target::Jti(v) => is(v, &e.leaf_jti),
            Target::Subtree(v) => {
                is(v, &e.root_jti)
                    || is(v, &e.leaf_jti)
                    || chain.is_some_and(|c| c.links.iter().any(|(j, _)| j == v))
            }
            Target::Agent(v) => e
                .actors
                .iter()
                .any(|a| a.kind == ActorKind::Agent && &a.id == v),
            Target::Sub(v) => e
                .actors
                .first()
                .is_some_and(|a| a.kind == ActorKind::User && &a.id == v),
            Target::Tool(v) => {
                let tool = e.tool.as_deref().unwrap_or_default();
                tool == v || tool.strip_prefix("mcp:") == Some(v.as_str())
            }
            Target::Kid(v) => chain.is_some_and(|c| c.kids.iter().any(|k| k == v)),
            Target::Server(v) => e.tool.as_deref().is_some_and(|t| {
                t.strip_prefix("mcp:")
                    .and_then(|t| t.strip_prefix(v.as_str()))
                    .is_some_and(|rest| rest.starts_with('/') || rest.starts_with(':'))
            }),
        }
    }

    fn check_revocations(&mut self, allowed: &Allowed) {
        let mut found = Vec::new();
        for r in &self.revocations {
            let after = match (allowed.epoch, r.epoch) {
                (Some(seen), Some(made)) => seen >= made,
                _ => allowed.index > r.index,
            };
            if after && self.covers(&r.target, &allowed.receipt) {
                found.push(format!(
                    "allowed after revocation receipt {} ({:?}) covering it",
                    r.index, r.target
                ));
            }
        }
        for detail in found {
            self.flag(allowed.index, "allow_after_revocation", detail);
        }
    }

    fn count_steps(&mut self, allowed: &Allowed, steps: &mut BTreeMap<String, u64>) {
        let e = &allowed.receipt.event;
        let links: Vec<(String, Option<u64>)> = match self.chain_of(&allowed.receipt) {
            Some(c) => c.links.clone(),
            None => e.leaf_jti.iter().map(|j| (j.clone(), None)).collect(),
        };
        for (jti, limit) in links {
            let used = steps.entry(jti.clone()).or_default();
            *used += 1;
            if let Some(limit) = limit.filter(|&l| *used > l) {
                let detail = format!("remit {jti} allowed call {used} of max_steps {limit}");
                self.flag(allowed.index, "steps_over_limit", detail);
            }
        }
    }
}

/// Checks a whole log's receipts, in index order.
pub fn check<'a>(receipts: impl IntoIterator<Item = &'a Receipt>) -> Vec<Violation> {
    let mut s = Semantics::new();
    for r in receipts {
        s.push(r);
    }
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::{Actor, Approval, ChainRef, Decision, Effect, Event};
    use remit_token::{EcdsaP256Signer, Grant, MintRequest, Pattern, Signer as _};

    /// A log built receipt by receipt, indexes in order.
    #[derive(Default)]
    struct Log(Vec<Receipt>);

    impl Log {
        fn push(&mut self, e: Event) -> u64 {
            let index = self.0.len() as u64;
            self.0.push(Receipt::new(e, index, None));
            index
        }

        fn check(&self) -> Vec<(u64, &'static str)> {
            check(&self.0)
                .into_iter()
                .map(|v| (v.index, v.code))
                .collect()
        }
    }

    fn allow(leaf: &str, epoch: Option<u64>) -> Event {
        let mut e = Event::new(Kind::Allow, 1);
        e.root_jti = Some("root-1".into());
        e.leaf_jti = Some(leaf.into());
        e.actors = vec![
            Actor {
                id: "alice".into(),
                kind: ActorKind::User,
            },
            Actor {
                id: "planner".into(),
                kind: ActorKind::Agent,
            },
        ];
        e.tool = Some("mcp:files/read_file".into());
        e.revocation_epoch = epoch;
        e
    }

    fn revoke(action: &str, epoch: Option<u64>) -> Event {
        let mut e = Event::new(Kind::Revoke, 1);
        e.tool = Some(action.into());
        e.revocation_epoch = epoch;
        e
    }

    #[test]
    fn an_allow_appended_after_its_subtree_was_revoked_is_reported_by_index() {
        let mut log = Log::default();
        log.push(allow("leaf-1", None));
        log.push(revoke("revoke.subtree:root-1", None));
        let bad = log.push(allow("leaf-1", None));
        assert_eq!(log.check(), [(bad, "allow_after_revocation")]);
    }

    #[test]
    fn every_kind_of_revocation_covers_what_it_names() {
        for action in [
            "revoke.jti:leaf-1",
            "revoke.subtree:leaf-1",
            "revoke.agent:planner",
            "agent.disable:planner",
            "revoke.sub:alice",
            "revoke.tool:files/read_file",
            "server.disable:files",
        ] {
            let mut log = Log::default();
            log.push(revoke(action, None));
            let bad = log.push(allow("leaf-1", None));
            assert_eq!(log.check(), [(bad, "allow_after_revocation")], "{action}");
        }
        for unrelated in [
            "revoke.jti:other",
            "revoke.agent:coder",
            "server.disable:file",
        ] {
            let mut log = Log::default();
            log.push(revoke(unrelated, None));
            log.push(allow("leaf-1", None));
            assert!(log.check().is_empty(), "{unrelated}");
        }
    }

    #[test]
    fn epochs_decide_over_log_order_both_ways() {
        // Decided before the revocation (epoch 4 < 5), appended after it:
        // the race every gateway has, not a violation.
        let mut log = Log::default();
        log.push(revoke("revoke.jti:leaf-1", Some(5)));
        log.push(allow("leaf-1", Some(4)));
        assert!(log.check().is_empty());
        // Saw the revocation (epoch 5) and still allowed, even though its
        // receipt was appended first.
        let mut log = Log::default();
        let bad = log.push(allow("leaf-1", Some(5)));
        log.push(revoke("revoke.jti:leaf-1", Some(5)));
        assert_eq!(log.check(), [(bad, "allow_after_revocation")]);
    }

    /// A root remit for planner with `max_steps`, and a chain record of it.
    fn chain_with_max_steps(max_steps: u64) -> (Event, ChainRef, String, String) {
        let issuer = EcdsaP256Signer::generate().unwrap();
        let holder = EcdsaP256Signer::generate().unwrap();
        let mut request = MintRequest::new(
            "alice",
            "planner",
            holder.public_jwk().clone(),
            vec![Grant::tools(vec![Pattern::try_from("files/*").unwrap()])],
        );
        request.max_steps = Some(max_steps);
        let root = remit_token::mint(&issuer, &request, 1_764_000_000).unwrap();
        let jti = root.claims().jti.clone();
        let record = Event::chain_record(vec![root.compact().to_owned()], 1);
        let chain = record.chain.clone().unwrap();
        (record, chain, jti, issuer.key_id().to_owned())
    }

    #[test]
    fn a_remit_allowed_past_its_max_steps_is_reported_at_the_extra_call() {
        let (record, chain, jti, _) = chain_with_max_steps(2);
        let mut log = Log::default();
        log.push(record);
        let mut calls = Vec::new();
        for _ in 0..3 {
            let mut e = allow(&jti, None);
            e.chain = Some(chain.clone());
            calls.push(log.push(e));
        }
        assert_eq!(log.check(), [(calls[2], "steps_over_limit")]);
    }

    #[test]
    fn a_key_revocation_reaches_the_links_that_key_signed_through_the_chain_record() {
        let (record, chain, jti, kid) = chain_with_max_steps(9);
        let mut log = Log::default();
        log.push(record);
        log.push(revoke(&format!("revoke.kid:{kid}"), None));
        let mut e = allow(&jti, None);
        e.chain = Some(chain);
        let bad = log.push(e);
        assert_eq!(log.check(), [(bad, "allow_after_revocation")]);
    }

    #[test]
    fn a_forged_chain_record_is_reported() {
        let (mut record, _, _, _) = chain_with_max_steps(9);
        record.links.push("eyJhbGciOiJFUzI1NiJ9.e30.c2ln".into());
        let mut log = Log::default();
        let bad = log.push(record);
        assert_eq!(log.check(), [(bad, "bad_chain_record")]);
    }

    fn approval_event(kind: Kind, id: &str) -> Event {
        let mut e = Event::new(kind, 1);
        e.approval = Some(Approval {
            approver: "bob".into(),
            id: id.into(),
        });
        e
    }

    #[test]
    fn an_approval_used_twice_or_never_granted_is_reported() {
        let mut log = Log::default();
        log.push(approval_event(Kind::Approve, "apr_1"));
        let mut first = allow("leaf-1", None);
        first.approval = Some(Approval {
            approver: "bob".into(),
            id: "apr_1".into(),
        });
        log.push(first.clone());
        let reused = log.push(first);
        let mut ungranted = allow("leaf-1", None);
        ungranted.approval = Some(Approval {
            approver: "bob".into(),
            id: "apr_2".into(),
        });
        let never = log.push(ungranted);
        assert_eq!(
            log.check(),
            [(reused, "approval_reused"), (never, "approval_not_granted")]
        );
    }

    fn decided(effect: Effect, version: &str) -> Event {
        let mut e = Event::new(
            if effect == Effect::Allow {
                Kind::Allow
            } else {
                Kind::Deny
            },
            1,
        );
        e.decision = Some(Decision {
            effect,
            policy_ids: vec![],
            policy_version: version.into(),
            reason: None,
        });
        e
    }

    #[test]
    fn a_decision_under_another_version_than_the_promoted_one_is_reported() {
        let mut log = Log::default();
        log.push(decided(Effect::Allow, "sha256:old"));
        let mut promote = Event::new(Kind::Promote, 1);
        promote.decision = Some(Decision {
            effect: Effect::Allow,
            policy_ids: vec![],
            policy_version: "sha256:new".into(),
            reason: None,
        });
        log.push(promote);
        log.push(decided(Effect::Allow, "sha256:new"));
        let bad = log.push(decided(Effect::Deny, "sha256:old"));
        assert_eq!(log.check(), [(bad, "policy_version_not_promoted")]);
    }

    #[test]
    fn a_log_that_keeps_every_rule_has_no_violations() {
        let (record, chain, jti, _) = chain_with_max_steps(2);
        let mut log = Log::default();
        log.push(record);
        let mut e = allow(&jti, Some(0));
        e.chain = Some(chain);
        log.push(e.clone());
        log.push(revoke(&format!("revoke.subtree:{jti}"), Some(1)));
        let mut refused = Event::new(Kind::Deny, 1);
        refused.leaf_jti = Some(jti);
        refused.unverified = true;
        log.push(refused);
        assert!(log.check().is_empty());
    }
}
