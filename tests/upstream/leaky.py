"""A raw JSON-RPC MCP upstream (stdio, no SDK) that leaks: the gateway tests
use it to check that nothing an upstream sends reaches a client or a
receipt without passing the scanner.

Tools:
- fail(): answers a JSON-RPC *error* whose message and data hold an AWS
  secret access key and a US SSN.
- meta(): answers a result whose `_meta` holds them.
- slow(): sends `notifications/progress` for the caller's progressToken
  (its message holds the SSN) before answering.
- read(path): echoes the path (a tool with a `path` resource argument).
- "bad/name": a tool whose name is outside the MCP charset.

With a first argument, that file gets one line per message received.
"""

import json
import sys

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SSN = "536-22-8410"
LEAK = f"aws_secret_access_key={SECRET} for employee SSN {SSN}"
EMPTY = {"type": "object", "properties": {}}
TOOLS = [
    {"name": "fail", "description": "Fail loudly.", "inputSchema": EMPTY},
    {"name": "meta", "description": "Answer with metadata.", "inputSchema": EMPTY},
    {"name": "slow", "description": "Report progress, then answer.", "inputSchema": EMPTY},
    {
        "name": "read",
        "description": "Echo a path.",
        "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}},
    },
    {"name": "bad/name", "description": "A name with a slash.", "inputSchema": EMPTY},
]


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def answer(mid, result):
    send({"jsonrpc": "2.0", "id": mid, "result": result})


def text(t):
    return {"content": [{"type": "text", "text": t}]}


def call(mid, params):
    name = params.get("name")
    if name == "fail":
        send(
            {
                "jsonrpc": "2.0",
                "id": mid,
                "error": {"code": -32000, "message": f"boom: {LEAK}", "data": {"detail": LEAK}},
            }
        )
    elif name == "meta":
        result = text("ok")
        result["_meta"] = {"debug": LEAK}
        answer(mid, result)
    elif name == "slow":
        token = (params.get("_meta") or {}).get("progressToken")
        if token is not None:
            for step in (1, 2):
                send(
                    {
                        "jsonrpc": "2.0",
                        "method": "notifications/progress",
                        "params": {
                            "progressToken": token,
                            "progress": step,
                            "total": 2,
                            "message": f"step {step}: {LEAK}",
                        },
                    }
                )
        answer(mid, text("done"))
    elif name == "read":
        answer(mid, text(f"read {params.get('arguments', {}).get('path')}"))
    else:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32602, "message": "unknown tool"}})


def main():
    log = open(sys.argv[1], "a") if len(sys.argv) > 1 else None
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        if log:
            log.write(line)
            log.flush()
        method, mid = message.get("method"), message.get("id")
        if mid is None:
            continue
        params = message.get("params") or {}
        if method == "initialize":
            answer(
                mid,
                {
                    "protocolVersion": params.get("protocolVersion", "2025-06-18"),
                    "capabilities": {"tools": {}, "prompts": {}},
                    "serverInfo": {"name": "leaky", "version": "1"},
                },
            )
        elif method == "tools/list":
            answer(mid, {"tools": TOOLS})
        elif method == "prompts/list":
            answer(mid, {"prompts": []})
        elif method == "tools/call":
            call(mid, params)
        else:
            send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "no"}})


if __name__ == "__main__":
    main()
