// The official TypeScript MCP client (@modelcontextprotocol/sdk) against
// the Remit gateway, to check that every refusal it can get parses with its
// reason intact. Prints one JSON line: {"ok": true, "result": ...} or
// {"ok": false, "code": ..., "message": ..., "data": ...}.
//
// Usage: node refusal-client.mjs URL CHAIN_FILE TOOL [ARGS_JSON]
// (the remit is presented as `Authorization: Bearer <chain>`)
import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, chainFile, tool, args] = process.argv.slice(2);
if (!url || !chainFile || !tool) {
  console.error("usage: refusal-client.mjs URL CHAIN_FILE TOOL [ARGS_JSON]");
  process.exit(2);
}
const chain = readFileSync(chainFile, "utf8").trim();
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${chain}` } },
});
const client = new Client({ name: "remit-refusal-test", version: "1.0.0" });
let out;
try {
  await client.connect(transport);
  const result = await client.callTool({ name: tool, arguments: JSON.parse(args ?? "{}") });
  out = { ok: true, result };
} catch (error) {
  out = { ok: false, code: error.code ?? null, message: String(error.message ?? error), data: error.data ?? null };
}
console.log(JSON.stringify(out));
await client.close().catch(() => {});
process.exit(0);
