# Remit preset: PERMISSIVE, Rego edition.
# Same policies, ids and reasons as permissive.cedar; read that file's header
# for the posture in two minutes. Escalation mode: plain-permit-wins.
package remit.policy

forbid contains {"id": "perm-agent-unregistered", "reason": "the agent is not registered"} if {
	input.principal.type == "Agent"
	not principal.registered
}

forbid contains {"id": "perm-target-unregistered", "reason": "remits go only to registered agents"} if {
	input.action in {"issue", "delegate"}
	not resource.registered
}

forbid contains {"id": "perm-steps-exhausted", "reason": "the remit has used all its steps"} if {
	ctx.steps_used >= ctx.steps_max
}

forbid contains {"id": "perm-tool-not-in-remit", "reason": "the tool is not listed in the remit"} if {
	input.action in tool_actions
	not tool_in_remit
}

forbid contains {"id": "perm-model-not-in-remit", "reason": "the model is not listed in the remit"} if {
	input.action == "send_prompt"
	not model_in_remit
}

forbid contains {"id": "perm-content-not-granted", "reason": "the remit does not grant this resource or prompt"} if {
	input.action in content_actions
	not ctx.granted
}

forbid contains {"id": "perm-content-secret", "reason": "a resource or prompt carrying a secret is not handed to the agent"} if {
	input.action in content_actions
	count(ctx.secrets) > 0
}

forbid contains {"id": "perm-secret-external", "reason": "secrets never leave for an external destination"} if {
	input.action in egress_actions
	count(ctx.secrets) > 0
	resource.external
}

forbid contains {"id": "perm-restricted-external", "reason": "RESTRICTED data never leaves for an external destination"} if {
	input.action in egress_actions
	ctx.data_class >= 3
	resource.external
}

permit contains {"id": "perm-issue-own-agent", "reason": "a user may issue remits to their own agents"} if {
	input.action == "issue"
	resource.owner == input.principal.id
}

permit contains {"id": "perm-delegate", "reason": "registered agents may delegate"} if {
	input.action == "delegate"
}

permit contains {"id": "perm-within-remit", "reason": "permissive: anything the remit lists is allowed"} if {
	input.action in {"call_tool", "read_result", "send_prompt", "read_resource", "get_prompt"}
}
