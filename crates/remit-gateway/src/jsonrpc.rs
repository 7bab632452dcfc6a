//! JSON-RPC 2.0 framing for MCP messages: reading a client's message under
//! the gateway's limits, and the answers and errors it sends back.
//!
//! The envelope types (`jsonrpc: "2.0"`, request ids, error objects) are
//! `rmcp`'s; this module only adds what a gateway needs on top: limits
//! (size, nesting depth, UTF-8) checked before anything is parsed into
//! memory-hungry values, and the stable error codes of a refusal.

use rmcp::model::{
    ErrorCode, ErrorData, JsonRpcError, JsonRpcResponse, JsonRpcVersion2_0, RequestId,
};
use serde::Deserialize;
use serde_json::Value;

/// The call was refused by the remit, the policy, the scanner or a budget.
pub const DENIED: ErrorCode = ErrorCode(-32041);
/// The call is held for a human approval; `data.approval_id` names it.
pub const APPROVAL_REQUIRED: ErrorCode = ErrorCode(-32042);
/// The remit does not cover the call; a wider remit would (HTTP 403).
pub const INSUFFICIENT_SCOPE: ErrorCode = ErrorCode(-32043);
/// The upstream server failed, timed out or answered something unusable.
pub const UPSTREAM_FAILED: ErrorCode = ErrorCode(-32044);
/// The message is over a configured limit (size or depth).
pub const LIMIT_EXCEEDED: ErrorCode = ErrorCode(-32045);

/// One message from a client: a request (with an id) or a notification.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The request id; `None` for a notification.
    pub id: Option<RequestId>,
    /// The method.
    pub method: String,
    /// The params object (empty when absent).
    pub params: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    #[allow(dead_code)]
    jsonrpc: JsonRpcVersion2_0,
    #[serde(default)]
    id: Option<RequestId>,
    method: String,
    #[serde(default)]
    params: Option<serde_json::Map<String, Value>>,
}

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The body is larger than the limit.
    #[error("the body is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body is not UTF-8.
    #[error("the body is not valid UTF-8 (at byte {at})")]
    InvalidUtf8 {
        /// Offset of the first invalid byte.
        at: usize,
    },
    /// Arrays and objects nest deeper than the limit.
    #[error("the JSON nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A JSON array: batches are not part of MCP since 2025-06-18.
    #[error("JSON-RPC batches are not accepted; send one message per request")]
    Batch,
    /// Not JSON, or not a JSON-RPC request or notification.
    #[error("not a JSON-RPC 2.0 request: {0}")]
    Malformed(String),
    /// The `MCP-Protocol-Version` header names a version this gateway
    /// does not speak (HTTP 400, as the MCP transport spec says).
    #[error("unsupported MCP-Protocol-Version; this gateway speaks 2025-11-25, 2025-06-18, 2025-03-26 and 2024-11-05")]
    ProtocolVersion,
}

impl FrameError {
    /// The gateway rule id a receipt of this refusal names.
    pub fn rule(&self) -> &'static str {
        match self {
            FrameError::TooLarge { .. } => "gw-body-too-large",
            FrameError::TooDeep { .. } => "gw-body-too-deep",
            FrameError::InvalidUtf8 { .. } => "gw-body-not-utf8",
            FrameError::Batch => "gw-batch",
            FrameError::Malformed(_) => "gw-body-malformed",
            FrameError::ProtocolVersion => "gw-protocol-version",
        }
    }

    /// The JSON-RPC error code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::TooLarge { .. } | FrameError::TooDeep { .. } => LIMIT_EXCEEDED,
            FrameError::InvalidUtf8 { .. } => ErrorCode::PARSE_ERROR,
            FrameError::Batch | FrameError::ProtocolVersion => ErrorCode::INVALID_REQUEST,
            FrameError::Malformed(_) => ErrorCode::PARSE_ERROR,
        }
    }
}

/// Nesting depth of JSON text, counted on the bytes (strings skipped), so a
/// hostile body is refused before `serde_json` builds anything from it.
pub fn nesting_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Reads one client message under the limits.
pub fn read(body: &[u8], max_bytes: usize, max_depth: usize) -> Result<Incoming, FrameError> {
    if body.len() > max_bytes {
        return Err(FrameError::TooLarge { limit: max_bytes });
    }
    if let Err(e) = std::str::from_utf8(body) {
        return Err(FrameError::InvalidUtf8 {
            at: e.valid_up_to(),
        });
    }
    if nesting_depth(body) > max_depth {
        return Err(FrameError::TooDeep { limit: max_depth });
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        return Err(FrameError::Batch);
    }
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    Ok(Incoming {
        id: envelope.id,
        method: envelope.method,
        params: envelope.params.unwrap_or_default(),
    })
}

/// A success answer to `id`.
pub fn result(id: RequestId, result: Value) -> Value {
    serde_json::to_value(JsonRpcResponse {
        jsonrpc: JsonRpcVersion2_0,
        id,
        result,
    })
    .unwrap_or(Value::Null)
}

/// An error answer to `id`; `"id": null` when the id could not be read
/// (JSON-RPC 2.0 requires the member, and the official MCP clients refuse
/// an error object without it, losing the reason).
pub fn error(
    id: Option<RequestId>,
    code: ErrorCode,
    message: String,
    data: Option<Value>,
) -> Value {
    let mut answer =
        serde_json::to_value(JsonRpcError::new(id, ErrorData::new(code, message, data)))
            .unwrap_or(Value::Null);
    if let Some(object) = answer.as_object_mut() {
        object.entry("id").or_insert(Value::Null);
    }
    answer
}

/// Whether `id` is a tool name MCP allows (`A-Za-z0-9_.-`, 1–128
/// characters): never a `/`, so `<server>/<tool>` is always two fields.
pub fn valid_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A request the gateway sends upstream, with its own id.
pub fn request(id: i64, method: &str, params: Value) -> Value {
    serde_json::json!({
        "jsonrpc": JsonRpcVersion2_0,
        "id": RequestId::Number(id),
        "method": method,
        "params": params,
    })
}

/// A notification the gateway sends upstream.
pub fn notification(method: &str) -> Value {
    serde_json::json!({ "jsonrpc": JsonRpcVersion2_0, "method": method })
}

/// What an upstream answered to one request.
#[derive(Debug, Clone, Deserialize)]
pub struct UpstreamReply {
    /// The id it answers (`None` for notifications and server requests).
    #[serde(default)]
    pub id: Option<RequestId>,
    /// Set on a server-to-client request or notification.
    #[serde(default)]
    pub method: Option<String>,
    /// The result, on success.
    #[serde(default)]
    pub result: Option<Value>,
    /// The error, on failure.
    #[serde(default)]
    pub error: Option<ErrorData>,
    /// A notification's params.
    #[serde(default)]
    pub params: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_ignores_brackets_inside_strings() {
        assert_eq!(nesting_depth(br#"{"a":"[[[[{{{{"}"#), 1);
        assert_eq!(nesting_depth(br#"{"a":[[{"b":"\"]"}]]}"#), 4);
    }

    #[test]
    fn batches_deep_bodies_and_bad_utf8_are_refused() {
        assert_eq!(read(b"[{}]", 100, 8).unwrap_err(), FrameError::Batch);
        let deep = format!("{}{}", "[".repeat(10), "]".repeat(10));
        assert_eq!(
            read(deep.as_bytes(), 100, 8).unwrap_err(),
            FrameError::TooDeep { limit: 8 }
        );
        assert!(matches!(
            read(b"{\"a\":\"\xff\"}", 100, 8).unwrap_err(),
            FrameError::InvalidUtf8 { at: 6 }
        ));
        assert_eq!(
            read(&[b' '; 101], 100, 8).unwrap_err(),
            FrameError::TooLarge { limit: 100 }
        );
    }

    #[test]
    fn an_error_without_a_known_id_says_id_null() {
        let e = error(None, ErrorCode::INVALID_REQUEST, "no".into(), None);
        assert_eq!(e["id"], Value::Null);
        assert!(e.as_object().unwrap().contains_key("id"));
    }

    #[test]
    fn tool_names_outside_the_mcp_charset_are_not_valid() {
        for bad in ["", "a/b", "a b", "é", "x\u{0}", &"a".repeat(129)] {
            assert!(!valid_tool_name(bad), "{bad:?}");
        }
        for good in ["read_file", "a.b-c_9", &"a".repeat(128)] {
            assert!(valid_tool_name(good), "{good:?}");
        }
    }

    #[test]
    fn a_request_and_a_notification_are_read() {
        let m = read(
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#,
            1000,
            8,
        )
        .unwrap();
        assert_eq!(m.id, Some(RequestId::Number(7)));
        assert!(m.params.is_empty());
        let n = read(
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            1000,
            8,
        )
        .unwrap();
        assert!(n.id.is_none());
        assert!(read(br#"{"jsonrpc":"1.0","id":1,"method":"x"}"#, 1000, 8).is_err());
    }
}
