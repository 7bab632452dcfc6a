# Remit preset: LOCKDOWN (the strictest posture), Rego edition.
# Same policies, ids and reasons as lockdown.cedar; read that file's header
# for the posture in two minutes. Escalation mode: escalate-wins.
package remit.policy

errors contains dangling_server if input.action in tool_actions

# ---- who may act ------------------------------------------------------------

forbid contains {"id": "lock-agent-unregistered", "reason": "the agent is not registered"} if {
	input.principal.type == "Agent"
	not principal.registered
}

forbid contains {"id": "lock-target-unregistered", "reason": "remits go only to registered agents"} if {
	input.action in {"issue", "delegate"}
	not resource.registered
}

forbid contains {"id": "lock-steps-exhausted", "reason": "the remit has used all its steps"} if {
	ctx.steps_used >= ctx.steps_max
}

forbid contains {"id": "lock-chain-too-deep", "reason": "lockdown allows no delegation beyond depth 1"} if {
	ctx.chain_depth > 1
}

forbid contains {"id": "lock-delegate-from-delegated", "reason": "lockdown allows no delegation beyond depth 1"} if {
	input.action == "delegate"
	ctx.chain_depth >= 1
}

forbid contains {"id": "lock-delegate-other-owner", "reason": "lockdown allows delegation only between agents of the same owner"} if {
	input.action == "delegate"
	resource.owner != principal.owner
}

forbid contains {"id": "lock-not-for-owner", "reason": "in lockdown an agent acts only for its own owner"} if {
	input.principal.type == "Agent"
	ctx.original_user != principal.owner
}

forbid contains {"id": "lock-bearer-token", "reason": "lockdown refuses bearer remits: the caller must prove possession of the remit's key (DPoP)"} if {
	ctx.pop == "bearer"
}

forbid contains {"id": "lock-issue-without-second-factor", "reason": "issuing a remit in lockdown needs a second factor"} if {
	input.action == "issue"
	not has_second_factor
}

# ---- what may be reached ----------------------------------------------------

forbid contains {"id": "lock-tool-not-in-remit", "reason": "the tool is not listed in the remit"} if {
	input.action in tool_actions
	not tool_in_remit
}

forbid contains {"id": "lock-model-not-in-remit", "reason": "the model is not listed in the remit"} if {
	input.action == "send_prompt"
	not model_in_remit
}

forbid contains {"id": "lock-medium-risk", "reason": "lockdown allows only low-risk tools; high ones need step-up approval"} if {
	input.action == "call_tool"
	resource.risk == "medium"
}

forbid contains {"id": "lock-server-not-blessed", "reason": "the tool's server has not been blessed by an operator"} if {
	input.action in tool_actions
	not server.blessed
}

forbid contains {"id": "lock-description-changed", "reason": "the server's tool descriptions do not match the pinned hash (possible rug pull)"} if {
	input.action == "call_tool"
	not description_ok
}

forbid contains {"id": "lock-content-not-granted", "reason": "the remit does not grant this resource or prompt"} if {
	input.action in content_actions
	not ctx.granted
}

forbid contains {"id": "lock-content-server-not-blessed", "reason": "the server has not been blessed by an operator"} if {
	input.action in content_actions
	not resource.blessed
}

# ---- where data may go ------------------------------------------------------

forbid contains {"id": "lock-pii-above-clearance", "reason": "personal data may not go to a tool cleared below the payload's class"} if {
	input.action == "call_tool"
	count(ctx.pii) > 0
	resource.destination_clearance < ctx.data_class
}

forbid contains {"id": "lock-secret", "reason": "lockdown never lets secrets leave"} if {
	input.action in egress_actions
	count(ctx.secrets) > 0
}

forbid contains {"id": "lock-restricted-to-tool", "reason": "RESTRICTED data may only go to a tool cleared for RESTRICTED"} if {
	input.action == "call_tool"
	ctx.data_class >= 3
	resource.destination_clearance < 3
}

forbid contains {"id": "lock-restricted-to-model", "reason": "RESTRICTED data may only go to a model cleared for RESTRICTED"} if {
	input.action == "send_prompt"
	ctx.data_class >= 3
	resource.clearance < 3
}

forbid contains {"id": "lock-internal-external-model", "reason": "in lockdown only PUBLIC or redacted data goes to an external model"} if {
	input.action == "send_prompt"
	ctx.data_class >= 1
	resource.external
	not ctx.redacted
}

forbid contains {"id": "lock-content-above-holder", "reason": "the content is classified above what the remit holder may receive"} if {
	input.action in content_actions
	not content_within_holder
}

content_within_holder if ctx.data_class <= ctx.holder_clearance

forbid contains {"id": "lock-content-secret", "reason": "lockdown never hands a secret in a resource or prompt to an agent"} if {
	input.action in content_actions
	count(ctx.secrets) > 0
}

# ---- what is allowed --------------------------------------------------------

permit contains {"id": "lock-issue-own-agent", "reason": "a user may issue remits to their own agents"} if {
	input.action == "issue"
	resource.owner == input.principal.id
}

permit contains {"id": "lock-delegate", "reason": "a root agent may delegate once, to an agent of the same owner"} if {
	input.action == "delegate"
}

permit contains {"id": "lock-low-risk", "reason": "low-risk tools listed in the remit are allowed"} if {
	input.action == "call_tool"
	resource.risk == "low"
}

permit contains {
	"id": "lock-high-risk-step-up",
	"reason": "high and irreversible tools need a human approval with a second factor",
	"escalate": "high-risk or irreversible tool: approval with step-up (second factor) required",
} if {
	input.action == "call_tool"
	resource.risk in high_risks
	not approved_with_step_up
}

approved_with_step_up if {
	ctx.approved
	has_second_factor
}

permit contains {"id": "lock-high-risk-approved", "reason": "a human approved this call with a second factor"} if {
	input.action == "call_tool"
	resource.risk in high_risks
	approved_with_step_up
}

permit contains {"id": "lock-read-result", "reason": "results of remit-listed tools may be read"} if {
	input.action == "read_result"
}

permit contains {"id": "lock-send-prompt", "reason": "prompts may go to remit-listed models"} if {
	input.action == "send_prompt"
}

permit contains {"id": "lock-read-resource", "reason": "granted resources of blessed servers may be read"} if {
	input.action == "read_resource"
	ctx.granted
}

permit contains {"id": "lock-get-prompt", "reason": "granted prompts of blessed servers may be fetched"} if {
	input.action == "get_prompt"
	ctx.granted
}
