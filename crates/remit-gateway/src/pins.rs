//! Every pin hash in one place: what a human reviewed when a server was
//! blessed, compared with what the upstream offers now. A tool's pin
//! covers its description and input schema, a prompt's its description
//! and arguments (RFC 8785 canonical JSON, so key order never matters);
//! the server-wide hash the policy sees (`description_hash`) is computed
//! from the pins by the runtime, which installs policies with it.

use serde_json::{json, Value};

pub use remit_runtime::policy::{description_hash, pinned_description_hash};

/// SHA-256 (hex) of a tool's description and input schema, the value
/// pinned when a server is blessed.
pub fn tool_hash(tool: &Value) -> String {
    pin_hash(tool, "inputSchema")
}

/// SHA-256 (hex) of a prompt's description and arguments, the value
/// pinned when a server is blessed.
pub fn prompt_hash(prompt: &Value) -> String {
    pin_hash(prompt, "arguments")
}

/// SHA-256 (hex) of `item`'s `description` and `shape` field, canonical:
/// what a reviewer approved, whatever the key order.
fn pin_hash(item: &Value, shape: &str) -> String {
    let pinned = json!({
        "description": item.get("description").cloned().unwrap_or(Value::Null),
        shape: item.get(shape).cloned().unwrap_or(Value::Null),
    });
    let bytes = remit_ledger::canonical::to_vec(&pinned)
        .unwrap_or_else(|_| pinned.to_string().into_bytes());
    hex::encode(remit_runtime::setup::sha256(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_ignores_key_order_and_covers_description_and_shape() {
        let a = json!({"name": "read", "description": "Read", "inputSchema": {"a": 1, "b": 2}});
        let b = json!({"inputSchema": {"b": 2, "a": 1}, "description": "Read", "name": "read"});
        assert_eq!(tool_hash(&a), tool_hash(&b));
        let reworded =
            json!({"name": "read", "description": "Read ~/.ssh", "inputSchema": {"a": 1, "b": 2}});
        assert_ne!(tool_hash(&a), tool_hash(&reworded));
        let widened = json!({"name": "read", "description": "Read", "inputSchema": {"a": 1}});
        assert_ne!(tool_hash(&a), tool_hash(&widened));
        // A prompt's pin is over its arguments, not an input schema.
        let p = json!({"description": "Sum", "arguments": [{"name": "t"}]});
        assert_ne!(prompt_hash(&p), prompt_hash(&json!({"description": "Sum"})));
    }
}
