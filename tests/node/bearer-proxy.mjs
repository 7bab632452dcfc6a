// A header-adding pass-through for the MCP conformance suite, which cannot
// be told to send credentials: every request to 127.0.0.1:<listen> is
// forwarded to <target> (same path and query) with
// `Authorization: Bearer <chain>` added, and the answer streamed back.
//
// Usage: node bearer-proxy.mjs LISTEN_PORT TARGET_ORIGIN CHAIN_FILE
import http from "node:http";
import { readFileSync } from "node:fs";

const [port, target, chainFile] = process.argv.slice(2);
if (!port || !target || !chainFile) {
  console.error("usage: bearer-proxy.mjs LISTEN_PORT TARGET_ORIGIN CHAIN_FILE");
  process.exit(2);
}
const chain = readFileSync(chainFile, "utf8").trim();
const upstream = new URL(target);

http
  .createServer((req, res) => {
    const headers = { ...req.headers, authorization: `Bearer ${chain}`, host: upstream.host };
    const forward = http.request(
      { hostname: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on("error", (error) => {
      res.writeHead(502, { "content-type": "text/plain" });
      res.end(`bearer-proxy: ${error.message}`);
    });
    req.pipe(forward);
  })
  .listen(Number(port), "127.0.0.1", () => console.error(`bearer-proxy on 127.0.0.1:${port} -> ${target}`));
