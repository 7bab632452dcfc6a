# Remit Rego prelude: loaded before every preset and override.
#
# Presets and overrides add objects to three sets in package remit.policy:
#   permit contains {"id": ..., "reason": ...}                    # allow
#   permit contains {"id": ..., "reason": ..., "escalate": ...}   # needs approval
#   forbid contains {"id": ..., "reason": ...}                    # deny, wins over all
#   errors contains "message"                                     # evaluation error => deny
# The Rust side combines them exactly as it combines Cedar's answer.
package remit.policy

dir := data.remit.directory

ctx := input.context

principal := dir.agents[input.principal.id] if input.principal.type == "Agent"

principal := dir.users[input.principal.id] if input.principal.type == "User"

resource := dir.agents[input.resource.id] if input.resource.type == "Agent"

resource := dir.tools[input.resource.id] if input.resource.type == "Tool"

resource := dir.models[input.resource.id] if input.resource.type == "Model"

resource := dir.servers[input.resource.id] if input.resource.type == "Server"

server := dir.servers[resource.server] if input.resource.type == "Tool"

tool_actions := {"call_tool", "read_result"}

egress_actions := {"call_tool", "send_prompt"}

# MCP resources and prompts: the resource is the Server, the content comes back.
content_actions := {"read_resource", "get_prompt"}

second_factors := {"mfa", "otp", "hwk", "swk"}

high_risks := {"high", "irreversible"}

tool_in_remit if input.resource.id in ctx.remit_tools

model_in_remit if input.resource.id in ctx.remit_models

has_second_factor if {
	some f in ctx.amr
	f in second_factors
}

description_ok if ctx.description_hash == server.pinned_description_hash

# Following a tool's server reference that the directory does not hold is an
# evaluation error (Cedar raises one); presets that read the server add
# `errors contains dangling_server if { ... }`.
dangling_server := concat("", ["entity Server::\"", resource.server, "\" does not exist"]) if {
	input.resource.type == "Tool"
	not dir.servers[resource.server]
}

errors contains msg if {
	false
	msg := ""
}

decision := {"permit": permit, "forbid": forbid, "errors": errors}
