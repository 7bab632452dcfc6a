# Remit preset: STANDARD (the default posture), Rego edition.
# Same policies, ids and reasons as standard.cedar; read that file's header
# for the posture in two minutes. Escalation mode: plain-permit-wins.
package remit.policy

errors contains dangling_server if input.action in tool_actions

# ---- who may act ------------------------------------------------------------

forbid contains {"id": "std-agent-unregistered", "reason": "the agent is not registered"} if {
	input.principal.type == "Agent"
	not principal.registered
}

forbid contains {"id": "std-target-unregistered", "reason": "remits go only to registered agents"} if {
	input.action in {"issue", "delegate"}
	not resource.registered
}

forbid contains {"id": "std-steps-exhausted", "reason": "the remit has used all its steps"} if {
	ctx.steps_used >= ctx.steps_max
}

forbid contains {"id": "std-delegation-depth", "reason": "delegation chains stop at depth 4"} if {
	input.action == "delegate"
	ctx.chain_depth >= 4
}

# ---- what may be reached ----------------------------------------------------

forbid contains {"id": "std-tool-not-in-remit", "reason": "the tool is not listed in the remit"} if {
	input.action in tool_actions
	not tool_in_remit
}

forbid contains {"id": "std-model-not-in-remit", "reason": "the model is not listed in the remit"} if {
	input.action == "send_prompt"
	not model_in_remit
}

forbid contains {"id": "std-server-not-blessed", "reason": "the tool's server has not been blessed by an operator"} if {
	input.action in tool_actions
	not server.blessed
}

forbid contains {"id": "std-description-changed", "reason": "the server's tool descriptions do not match the pinned hash (possible rug pull)"} if {
	input.action == "call_tool"
	not description_ok
}

forbid contains {"id": "std-content-not-granted", "reason": "the remit does not grant this resource or prompt"} if {
	input.action in content_actions
	not ctx.granted
}

forbid contains {"id": "std-content-server-not-blessed", "reason": "the server has not been blessed by an operator"} if {
	input.action in content_actions
	not resource.blessed
}

# ---- where data may go ------------------------------------------------------

forbid contains {"id": "std-restricted-to-tool", "reason": "RESTRICTED data may only go to a tool cleared for RESTRICTED"} if {
	input.action == "call_tool"
	ctx.data_class >= 3
	resource.destination_clearance < 3
}

forbid contains {"id": "std-restricted-to-model", "reason": "RESTRICTED data may only go to a model cleared for RESTRICTED"} if {
	input.action == "send_prompt"
	ctx.data_class >= 3
	resource.clearance < 3
}

forbid contains {"id": "std-confidential-external-model", "reason": "CONFIDENTIAL data goes to an external model only after redaction"} if {
	input.action == "send_prompt"
	ctx.data_class >= 2
	resource.external
	not ctx.redacted
}

forbid contains {"id": "std-secret-external", "reason": "secrets never leave for an external destination"} if {
	input.action in egress_actions
	count(ctx.secrets) > 0
	resource.external
}

forbid contains {"id": "std-content-restricted-to-holder", "reason": "RESTRICTED content may only reach a holder cleared for RESTRICTED"} if {
	input.action in content_actions
	ctx.data_class >= 3
	not holder_cleared_for_restricted
}

holder_cleared_for_restricted if ctx.holder_clearance >= 3

forbid contains {"id": "std-content-secret", "reason": "a resource or prompt carrying a secret is not handed to the agent"} if {
	input.action in content_actions
	count(ctx.secrets) > 0
}

# ---- what is allowed --------------------------------------------------------

permit contains {"id": "std-issue-own-agent", "reason": "a user may issue remits to their own agents"} if {
	input.action == "issue"
	resource.owner == input.principal.id
}

permit contains {"id": "std-delegate-same-owner", "reason": "an agent may delegate to another agent of the same owner"} if {
	input.action == "delegate"
	resource.owner == principal.owner
}

permit contains {
	"id": "std-delegate-other-owner",
	"reason": "delegation across owners needs the receiving owner's consent",
	"escalate": "delegation to another owner's agent needs a human approval",
} if {
	input.action == "delegate"
	resource.owner != principal.owner
	not ctx.approved
}

permit contains {"id": "std-low-risk", "reason": "low-risk tools listed in the remit are allowed"} if {
	input.action == "call_tool"
	resource.risk == "low"
}

permit contains {"id": "std-medium-within-budget", "reason": "medium-risk tools are allowed within the agent's risk budget"} if {
	input.action == "call_tool"
	resource.risk == "medium"
	ctx.risk_budget_used < ctx.risk_budget_max
}

permit contains {
	"id": "std-medium-over-budget",
	"reason": "past its risk budget an agent needs approval for medium-risk tools",
	"escalate": "risk budget exhausted: a human must approve this medium-risk call",
} if {
	input.action == "call_tool"
	resource.risk == "medium"
	ctx.risk_budget_used >= ctx.risk_budget_max
	not ctx.approved
}

permit contains {
	"id": "std-high-risk",
	"reason": "high and irreversible tools always need a human",
	"escalate": "high-risk or irreversible tool: a human must approve this call",
} if {
	input.action == "call_tool"
	resource.risk in high_risks
	not ctx.approved
}

permit contains {"id": "std-approved", "reason": "a human approved this call"} if {
	input.action in {"call_tool", "delegate"}
	ctx.approved
}

permit contains {"id": "std-read-result", "reason": "results of remit-listed tools may be read"} if {
	input.action == "read_result"
}

permit contains {"id": "std-send-prompt", "reason": "prompts may go to remit-listed models"} if {
	input.action == "send_prompt"
}

permit contains {"id": "std-read-resource", "reason": "granted resources of blessed servers may be read"} if {
	input.action == "read_resource"
	ctx.granted
}

permit contains {"id": "std-get-prompt", "reason": "granted prompts of blessed servers may be fetched"} if {
	input.action == "get_prompt"
	ctx.granted
}
