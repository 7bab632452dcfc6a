//! Receipts as OCSF 1.3 API Activity events (class 6003), for a SIEM.
//!
//! One receipt maps to one [`ApiActivity`], serialized with serde; the
//! mapping is the only place that knows OCSF. What maps where:
//!
//! | Receipt | OCSF |
//! |---|---|
//! | `kind` issue, delegate, register / revoke / promote / any other | `activity_id` 1 Create / 4 Delete / 3 Update / 99 Other |
//! | `kind` deny, reject, error / escalate / any other | `status_id` 2 Failure (severity 3 Medium) / 0 Unknown / 1 Success (severity 1 Informational) |
//! | `time` (Unix ms) | `time` (`timestamp_t`, ms) |
//! | `index` | `metadata.uid` |
//! | first user of the actor chain | `actor.user` (`uid`, type User) |
//! | last agent of the actor chain | `actor.app_name`, and `src_endpoint.name` (the user's id when no agent) |
//! | `tool` (the kind when absent) | `api.operation` |
//! | every receipt field, the signing `kid` | `unmapped.remit` |
//!
//! [`rfc3339`] formats a receipt time as OCSF's `datetime_t` (RFC 3339,
//! UTC, milliseconds), through the `time` crate.

use std::collections::BTreeMap;

use serde::ser::SerializeStruct as _;
use serde::{Serialize, Serializer};
use time::macros::format_description;
use time::OffsetDateTime;

use crate::receipt::{
    Actor, ActorKind, Approval, ArgsHash, Classification, Decision, Kind, Receipt, Traceparent,
};
use crate::signed::SignedReceipt;

/// The OCSF schema version the events follow.
pub const OCSF_VERSION: &str = "1.3.0";

/// OCSF class API Activity.
const CLASS_UID: u32 = 6003;

/// An OCSF API Activity `activity_id` with its caption; serialized as
/// `activity_id`, `activity_name` and the derived `type_uid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// 0.
    Unknown,
    /// 1: something was created (issue, delegate, register).
    Create,
    /// 2.
    Read,
    /// 3: something was changed (promote).
    Update,
    /// 4: something was removed (revoke).
    Delete,
    /// 99: a call decision or its outcome.
    Other,
}

impl Activity {
    /// The activity a receipt kind records.
    pub fn of(kind: Kind) -> Self {
        match kind {
            Kind::Issue | Kind::Delegate | Kind::Register | Kind::Chain => Activity::Create,
            Kind::Revoke => Activity::Delete,
            Kind::Promote => Activity::Update,
            Kind::Allow
            | Kind::Deny
            | Kind::Escalate
            | Kind::Approve
            | Kind::Reject
            | Kind::ResultRedacted
            | Kind::ResultReleased
            | Kind::Error => Activity::Other,
        }
    }

    /// The OCSF `activity_id`.
    pub fn id(self) -> u32 {
        match self {
            Activity::Unknown => 0,
            Activity::Create => 1,
            Activity::Read => 2,
            Activity::Update => 3,
            Activity::Delete => 4,
            Activity::Other => 99,
        }
    }

    /// The OCSF caption (`activity_name`).
    pub fn caption(self) -> &'static str {
        match self {
            Activity::Unknown => "Unknown",
            Activity::Create => "Create",
            Activity::Read => "Read",
            Activity::Update => "Update",
            Activity::Delete => "Delete",
            Activity::Other => "Other",
        }
    }
}

impl Serialize for Activity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Activity", 3)?;
        st.serialize_field("activity_id", &self.id())?;
        st.serialize_field("activity_name", self.caption())?;
        st.serialize_field("type_uid", &(CLASS_UID * 100 + self.id()))?;
        st.end()
    }
}

/// An OCSF `status_id` with its caption, and the `severity_id` that goes
/// with it; serialized as `severity_id`, `status_id` and `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0: the outcome is pending (a call held for a human).
    Unknown,
    /// 1: done or allowed (severity 1, Informational).
    Success,
    /// 2: refused or failed (severity 3, Medium).
    Failure,
}

impl Status {
    /// The status a receipt kind records.
    pub fn of(kind: Kind) -> Self {
        match kind {
            Kind::Deny | Kind::Reject | Kind::Error => Status::Failure,
            Kind::Escalate => Status::Unknown,
            Kind::Issue
            | Kind::Delegate
            | Kind::Allow
            | Kind::Approve
            | Kind::Revoke
            | Kind::Promote
            | Kind::ResultRedacted
            | Kind::ResultReleased
            | Kind::Register
            | Kind::Chain => Status::Success,
        }
    }

    /// The OCSF `status_id`.
    pub fn id(self) -> u32 {
        match self {
            Status::Unknown => 0,
            Status::Success => 1,
            Status::Failure => 2,
        }
    }

    /// The OCSF caption (`status`).
    pub fn caption(self) -> &'static str {
        match self {
            Status::Unknown => "Unknown",
            Status::Success => "Success",
            Status::Failure => "Failure",
        }
    }

    /// The OCSF `severity_id`: 3 (Medium) for a failure, else 1
    /// (Informational).
    pub fn severity_id(self) -> u32 {
        match self {
            Status::Failure => 3,
            Status::Unknown | Status::Success => 1,
        }
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Status", 3)?;
        st.serialize_field("severity_id", &self.severity_id())?;
        st.serialize_field("status_id", &self.id())?;
        st.serialize_field("status", self.caption())?;
        st.end()
    }
}

/// One receipt as an OCSF 1.3 API Activity event. Built only by
/// [`ApiActivity::new`]; read it by serializing it.
#[derive(Debug, Clone, Serialize)]
pub struct ApiActivity<'a> {
    class_uid: u32,
    class_name: &'static str,
    category_uid: u32,
    category_name: &'static str,
    #[serde(flatten)]
    activity: Activity,
    time: u64,
    #[serde(flatten)]
    status: Status,
    message: String,
    metadata: Metadata,
    actor: OcsfActor<'a>,
    api: Api<'a>,
    src_endpoint: Endpoint<'a>,
    unmapped: Unmapped<'a>,
}

#[derive(Debug, Clone, Serialize)]
struct Metadata {
    version: &'static str,
    uid: String,
    product: Product,
    log_name: &'static str,
}

#[derive(Debug, Clone, Serialize)]
struct Product {
    name: &'static str,
    vendor_name: &'static str,
}

#[derive(Debug, Clone, Serialize)]
struct OcsfActor<'a> {
    user: Option<User<'a>>,
    app_name: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize)]
struct User<'a> {
    uid: &'a str,
    #[serde(rename = "type")]
    type_caption: &'static str,
    type_id: u32,
}

#[derive(Debug, Clone, Serialize)]
struct Api<'a> {
    operation: &'a str,
    service: Service,
}

#[derive(Debug, Clone, Serialize)]
struct Service {
    name: &'static str,
}

/// The source of the activity. The receipt records no network address, so
/// the endpoint is named after the acting principal (OCSF requires at
/// least one of its identifying attributes).
#[derive(Debug, Clone, Serialize)]
struct Endpoint<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize)]
struct Unmapped<'a> {
    remit: RemitFields<'a>,
}

/// Every receipt field, under `unmapped.remit`, absent ones as `null`.
#[derive(Debug, Clone, Serialize)]
struct RemitFields<'a> {
    kind: Kind,
    index: u64,
    kid: &'a str,
    root_jti: &'a Option<String>,
    leaf_jti: &'a Option<String>,
    actors: &'a [Actor],
    args_hash: &'a Option<ArgsHash>,
    findings: &'a BTreeMap<String, u32>,
    classification: Option<Classification>,
    decision: &'a Option<Decision>,
    approval: &'a Option<Approval>,
    traceparent: &'a Option<Traceparent>,
}

impl<'a> ApiActivity<'a> {
    /// The event for `receipt`, signed by the key `kid`.
    pub fn new(receipt: &'a Receipt, kid: &'a str) -> Self {
        let e = &receipt.event;
        let user = e.actors.iter().find(|a| a.kind == ActorKind::User);
        let agent = e.actors.iter().rev().find(|a| a.kind == ActorKind::Agent);
        let message = match &e.tool {
            Some(tool) => format!("{} {tool}", e.kind.as_str()),
            None => e.kind.as_str().to_owned(),
        };
        ApiActivity {
            class_uid: CLASS_UID,
            class_name: "API Activity",
            category_uid: 6,
            category_name: "Application Activity",
            activity: Activity::of(e.kind),
            time: e.time,
            status: Status::of(e.kind),
            message: message.trim_end().to_owned(),
            metadata: Metadata {
                version: OCSF_VERSION,
                uid: receipt.index.to_string(),
                product: Product {
                    name: "Remit",
                    vendor_name: "Remit",
                },
                log_name: "remit-receipts",
            },
            actor: OcsfActor {
                user: user.map(|u| User {
                    uid: &u.id,
                    type_caption: "User",
                    type_id: 1,
                }),
                app_name: agent.map(|a| a.id.as_str()),
            },
            api: Api {
                operation: e.tool.as_deref().unwrap_or(e.kind.as_str()),
                service: Service {
                    name: "remit-gateway",
                },
            },
            src_endpoint: Endpoint {
                name: agent.or(user).map(|a| a.id.as_str()),
            },
            unmapped: Unmapped {
                remit: RemitFields {
                    kind: e.kind,
                    index: receipt.index,
                    kid,
                    root_jti: &e.root_jti,
                    leaf_jti: &e.leaf_jti,
                    actors: &e.actors,
                    args_hash: &e.args_hash,
                    findings: &e.findings,
                    classification: e.classification,
                    decision: &e.decision,
                    approval: &e.approval,
                    traceparent: &e.traceparent,
                },
            },
        }
    }

    /// The event for a parsed, signed leaf.
    pub fn of_signed(r: &'a SignedReceipt) -> Self {
        ApiActivity::new(&r.receipt, &r.kid)
    }

    /// The activity (Create, Update, Delete or Other).
    pub fn activity(&self) -> Activity {
        self.activity
    }

    /// The status (Success, Failure, or Unknown while a human decides).
    pub fn status(&self) -> Status {
        self.status
    }
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds
/// (`2025-11-25T12:00:00.123Z`), OCSF's `datetime_t`. `None` after the
/// year 9999, which RFC 3339 cannot write (a receipt time may reach
/// 2^53 - 1 ms, year 287396).
pub fn rfc3339(ms: u64) -> Option<String> {
    let nanos = i128::from(ms) * 1_000_000;
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    if at.year() > 9999 {
        return None;
    }
    at.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::receipt::{Effect, Event, MAX_SAFE_INTEGER};

    fn actor(kind: ActorKind, id: &str) -> Actor {
        Actor {
            id: id.into(),
            kind,
        }
    }

    fn event(kind: Kind, tool: Option<&str>, effect: Option<Effect>) -> Event {
        let mut e = Event::new(kind, 1_764_072_000_123);
        e.root_jti = Some("r1".into());
        e.leaf_jti = Some("l1".into());
        e.actors = vec![
            actor(ActorKind::User, "alice"),
            actor(ActorKind::Agent, "planner"),
            actor(ActorKind::Agent, "coder"),
        ];
        e.tool = tool.map(str::to_owned);
        e.decision = effect.map(|effect| Decision {
            effect,
            policy_ids: vec!["std-x".into()],
            policy_version: "sha256:00".into(),
            reason: (effect != Effect::Allow).then(|| "because".to_owned()),
        });
        e
    }

    fn ocsf(kind: Kind, tool: Option<&str>, effect: Option<Effect>) -> Value {
        let receipt = Receipt::new(event(kind, tool, effect), 7, None);
        serde_json::to_value(ApiActivity::new(&receipt, "gw1")).unwrap()
    }

    /// The fields every event carries whatever its kind.
    fn assert_common(v: &Value) {
        assert_eq!(v["class_uid"], 6003);
        assert_eq!(v["class_name"], "API Activity");
        assert_eq!(v["category_uid"], 6);
        assert_eq!(v["category_name"], "Application Activity");
        assert_eq!(v["time"], 1_764_072_000_123_u64);
        assert_eq!(
            v["metadata"],
            json!({
                "version": "1.3.0",
                "uid": "7",
                "product": { "name": "Remit", "vendor_name": "Remit" },
                "log_name": "remit-receipts",
            })
        );
        assert_eq!(
            v["actor"],
            json!({ "user": { "uid": "alice", "type": "User", "type_id": 1 }, "app_name": "coder" })
        );
        assert_eq!(v["src_endpoint"], json!({ "name": "coder" }));
        assert_eq!(v["api"]["service"]["name"], "remit-gateway");
        assert_eq!(v["unmapped"]["remit"]["index"], 7);
        assert_eq!(v["unmapped"]["remit"]["kid"], "gw1");
        assert_eq!(v["unmapped"]["remit"]["root_jti"], "r1");
        assert_eq!(v["unmapped"]["remit"]["leaf_jti"], "l1");
        assert_eq!(v["unmapped"]["remit"]["actors"][2]["id"], "coder");
    }

    #[test]
    fn an_allowed_call_is_a_successful_other_activity() {
        let v = ocsf(
            Kind::Allow,
            Some("github/create_issue"),
            Some(Effect::Allow),
        );
        assert_common(&v);
        assert_eq!(
            (&v["activity_id"], &v["activity_name"], &v["type_uid"]),
            (&json!(99), &json!("Other"), &json!(600_399))
        );
        assert_eq!(
            (&v["status_id"], &v["status"], &v["severity_id"]),
            (&json!(1), &json!("Success"), &json!(1))
        );
        assert_eq!(v["message"], "allow github/create_issue");
        assert_eq!(v["api"]["operation"], "github/create_issue");
        assert_eq!(v["unmapped"]["remit"]["kind"], "allow");
        assert_eq!(v["unmapped"]["remit"]["decision"]["effect"], "allow");
        assert!(v["unmapped"]["remit"]["decision"].get("reason").is_none());
    }

    #[test]
    fn a_denied_call_is_a_failure_of_medium_severity_with_its_reason() {
        let v = ocsf(Kind::Deny, Some("fs.delete"), Some(Effect::Deny));
        assert_common(&v);
        assert_eq!(v["activity_id"], 99);
        assert_eq!(
            (&v["status_id"], &v["status"], &v["severity_id"]),
            (&json!(2), &json!("Failure"), &json!(3))
        );
        assert_eq!(v["unmapped"]["remit"]["decision"]["reason"], "because");
        assert_eq!(
            v["unmapped"]["remit"]["decision"]["policy_ids"],
            json!(["std-x"])
        );
    }

    #[test]
    fn an_escalated_call_has_an_unknown_status_until_a_human_decides() {
        let v = ocsf(Kind::Escalate, Some("fs.delete"), Some(Effect::Escalate));
        assert_common(&v);
        assert_eq!(v["activity_id"], 99);
        assert_eq!(
            (&v["status_id"], &v["status"], &v["severity_id"]),
            (&json!(0), &json!("Unknown"), &json!(1))
        );
        assert_eq!(v["unmapped"]["remit"]["decision"]["effect"], "escalate");
    }

    #[test]
    fn a_revocation_is_a_delete_and_names_the_kind_when_there_is_no_tool() {
        let v = ocsf(Kind::Revoke, None, None);
        assert_common(&v);
        assert_eq!(
            (&v["activity_id"], &v["activity_name"], &v["type_uid"]),
            (&json!(4), &json!("Delete"), &json!(600_304))
        );
        assert_eq!(v["status_id"], 1);
        assert_eq!(v["message"], "revoke");
        assert_eq!(v["api"]["operation"], "revoke");
    }

    #[test]
    fn a_receipt_with_no_decision_carries_nulls_not_missing_fields() {
        let v = ocsf(Kind::Issue, None, None);
        assert_eq!(
            (&v["activity_id"], &v["activity_name"], &v["type_uid"]),
            (&json!(1), &json!("Create"), &json!(600_301))
        );
        let remit = v["unmapped"]["remit"].as_object().unwrap();
        for key in [
            "decision",
            "approval",
            "args_hash",
            "classification",
            "traceparent",
        ] {
            assert_eq!(remit.get(key), Some(&Value::Null), "{key}");
        }
        assert_eq!(remit.get("findings"), Some(&json!({})));
    }

    #[test]
    fn an_event_with_no_actor_has_null_actor_fields_and_an_unnamed_source() {
        let receipt = Receipt::new(Event::new(Kind::Promote, 0), 0, None);
        let v = serde_json::to_value(ApiActivity::new(&receipt, "k")).unwrap();
        assert_eq!(v["activity_id"], 3);
        assert_eq!(v["actor"], json!({ "user": null, "app_name": null }));
        assert_eq!(v["src_endpoint"], json!({}));
        assert_eq!(v["time"], 0);
    }

    #[test]
    fn every_kind_maps_to_an_activity_and_status_that_agree_with_the_decision() {
        use Kind::*;
        for kind in [
            Issue,
            Delegate,
            Allow,
            Deny,
            Escalate,
            Approve,
            Reject,
            Revoke,
            Promote,
            ResultRedacted,
            ResultReleased,
            Error,
            Register,
        ] {
            let status = Status::of(kind);
            let refused = matches!(kind, Deny | Reject | Error);
            assert_eq!(status == Status::Failure, refused, "{kind:?}");
            assert_eq!(status.severity_id() == 3, refused, "{kind:?}");
            let activity = Activity::of(kind);
            assert_eq!(
                activity == Activity::Other,
                !matches!(kind, Issue | Delegate | Register | Revoke | Promote),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn the_key_order_is_the_documented_one() {
        let receipt = Receipt::new(event(Kind::Allow, Some("t"), None), 1, None);
        let text = serde_json::to_string(&ApiActivity::new(&receipt, "gw1")).unwrap();
        let keys = [
            "\"class_uid\"",
            "\"class_name\"",
            "\"category_uid\"",
            "\"category_name\"",
            "\"activity_id\"",
            "\"activity_name\"",
            "\"type_uid\"",
            "\"time\"",
            "\"severity_id\"",
            "\"status_id\"",
            "\"status\"",
            "\"message\"",
            "\"metadata\"",
            "\"actor\"",
            "\"api\"",
            "\"src_endpoint\"",
            "\"unmapped\"",
        ];
        let at: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn times_are_rfc3339_with_milliseconds_across_leap_years() {
        assert_eq!(rfc3339(0).unwrap(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(951_782_400_000).unwrap(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339(1_764_072_000_123).unwrap(),
            "2025-11-25T12:00:00.123Z"
        );
        assert_eq!(
            rfc3339(1_764_072_000_007).unwrap(),
            "2025-11-25T12:00:00.007Z"
        );
        assert_eq!(
            rfc3339(253_402_300_799_999).unwrap(),
            "9999-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn a_time_past_year_9999_has_no_rfc3339_form() {
        assert_eq!(rfc3339(253_402_300_800_000), None);
        assert_eq!(rfc3339(MAX_SAFE_INTEGER), None);
        assert_eq!(rfc3339(u64::MAX), None);
    }
}
