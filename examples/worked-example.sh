#!/usr/bin/env bash
# The README's worked example, run end to end: mint -> call -> deny ->
# receipt -> verify. scripts/test runs it so the README stays true.
#
#   REMIT_BIN=target/debug/remit examples/worked-example.sh
set -euo pipefail
remit() { "${REMIT_BIN:-remit}" "$@"; }
# expect CODE CMD...: run CMD and insist on its exit code.
expect() {
  local want=$1; shift
  local got=0; "$@" || got=$?
  [ "$got" = "$want" ] || { echo "worked-example: '$*' exited $got, expected $want" >&2; exit 1; }
}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; cd "$work"

echo "== keys: an issuer, an agent, and the gateway that signs receipts"
remit keys generate --out issuer.jwk --kid issuer-1 > /dev/null
remit keys generate --out planner.jwk > /dev/null
remit keys generate --out reader.jwk > /dev/null
remit keys generate --out gateway.jwk --kid gw-1 > /dev/null
remit keys jwks issuer.jwk > jwks.json
remit keys jwks gateway.jwk > gateway-jwks.json

echo "== mint: alice lets the planner agent read reports for 10 minutes"
ROOT=$(remit token mint --issuer-key issuer.jwk --sub alice --agent planner \
  --holder-jwk planner.jwk --tool read_file --tool list_dir \
  --resource '/data/reports/**' --ttl 10m --max-steps 20 --class CONFIDENTIAL)

echo "== delegate: the planner hands a sub-agent a narrower remit, offline"
CHAIN=$(remit token delegate --parent "$ROOT" --holder-key planner.jwk \
  --to-jwk reader.jwk --agent reader --tool read_file \
  --resource '/data/reports/2026/*' --ttl 5m --class INTERNAL)

echo "== call: reading a 2026 report is inside the chain's authority"
expect 0 remit token verify --jwks jwks.json "$CHAIN" --tool read_file --resource /data/reports/2026/q3.txt

echo "== deny: another tool, a wider path, a path that climbs out, and a widened delegation"
expect 1 remit token verify --jwks jwks.json "$CHAIN" --tool delete_file --resource /data/reports/2026/q3.txt
expect 1 remit token verify --jwks jwks.json "$CHAIN" --tool read_file --resource /data/hr/salaries.csv
expect 1 remit token verify --jwks jwks.json "$CHAIN" --tool read_file \
  --resource /data/reports/2026/../../hr/salaries.csv
expect 2 remit token delegate --parent "$ROOT" --holder-key planner.jwk \
  --to-jwk reader.jwk --agent reader --tool write_file

echo "== scan: arguments carrying a US SSN are RESTRICTED"
printf '%s' '{"title":"Refund 1182","body":"customer SSN 078-05-1120"}' > args.json
remit scan args.json
remit scan args.json --json | grep -q '"classification": "RESTRICTED"'

echo "== policy: the standard preset refuses RESTRICTED data to an INTERNAL tool"
remit policy new --preset standard --out policy > /dev/null
cat > ctx.json <<'JSON'
{"args":{"title":"Refund 1182","body":"customer SSN 078-05-1120"},
 "data_class":"RESTRICTED","pii":["us_ssn"],"chain_depth":1,"original_user":"alice",
 "steps_used":3,"steps_max":20,"risk_budget_used":0,"risk_budget_max":10,"hour_utc":14,
 "remit_tools":["github/create_issue"],"description_hash":"sha256:9f2c"}
JSON
expect 1 remit policy eval policy --principal 'Agent::"a"' --action call_tool \
  --resource 'Tool::"github/create_issue"' --context ctx.json --explain

echo "== receipt: the gateway records the deny in the signed log"
remit audit init --log log --origin remit.example/audit --note-key-out note.key > note.pub
cat > deny.json <<'JSON'
{"kind":"deny","time":1795608000123,"root_jti":"root-1","leaf_jti":"leaf-2",
 "actors":[{"kind":"user","id":"alice"},{"kind":"agent","id":"planner"},{"kind":"agent","id":"reader"}],
 "tool":"github/create_issue","findings":{"US_SSN":1},"classification":"RESTRICTED",
 "decision":{"effect":"deny","policy_ids":["std-restricted-to-tool"],"policy_version":"sha256:289c"}}
JSON
remit audit append --log log --key gateway.jwk --note-key note.key --receipt deny.json
cp log/checkpoint kept.checkpoint

echo "== verify: an auditor checks the log offline with public keys only"
expect 0 remit audit verify --log log --jwks gateway-jwks.json --note-pub note.pub --checkpoint kept.checkpoint
remit audit show --log log --user alice

echo "== tamper: one changed byte is caught, naming the receipt"
sed -i 's/"deny"/"allow"/' log/receipts.jsonl
expect 1 remit audit verify --log log --jwks gateway-jwks.json --note-pub note.pub
echo "worked example: ok"
