"""The OpenAI and Anthropic SDK helpers of the `remit` package.

Remit's LLM egress guard (`/llm/{route}/v1/...`) is not built yet, so
these tests check only what the helpers make the official SDKs send — the
URL, the remit as the API key, or `Authorization: DPoP <chain>` with a
proof that the Rust core verifies for exactly that method and URL — to a
small local HTTP server answering like the provider would.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import pytest

import remit
import remit.llm
from remit import Chain, Grant, Jwks, Key
from sdk_forge import mint

OPENAI_ANSWER = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-test",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}
ANTHROPIC_ANSWER = {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
    "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 1, "output_tokens": 1},
}


class Provider:
    """A local stand-in for the guard: records each request, answers 200."""

    def __init__(self):
        self.requests: list[dict] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                provider.requests.append({"path": self.path, "headers": headers, "body": json.loads(body)})
                answer = ANTHROPIC_ANSWER if "/messages" in self.path else OPENAI_ANSWER
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def only(self) -> dict:
        assert len(self.requests) == 1, self.requests
        return self.requests.pop()


@pytest.fixture
def provider():
    p = Provider()
    yield p
    p.http.shutdown()


@pytest.fixture(scope="module")
def remits():
    issuer, agent = Key.generate(kid="issuer-1"), Key.generate()
    import time

    now = int(time.time())
    root = mint(issuer, agent, iat=now, nbf=now, exp=now + 600,
                authorization_details=[Grant(["llm/*"]).to_dict()], max_steps=None)
    chain = Chain.parse(root)
    return chain, agent, Jwks.from_json(issuer.jwks())


def check_dpop(request: dict, chain: Chain, jwks: Jwks, url: str):
    headers = request["headers"]
    assert headers["authorization"] == f"DPoP {chain.text}"
    verified = remit.verify_chain(chain, jwks)
    assert verified.verify_proof(headers["dpop"], "POST", url)
    return headers


def test_openai_with_the_remit_as_api_key(provider, remits):
    chain, _, _ = remits
    client = remit.llm.openai_client(provider.url, "openai", chain)
    answer = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hello"}])
    assert answer.choices[0].message.content == "hi"
    request = provider.only()
    assert request["path"] == "/llm/openai/v1/chat/completions"
    assert request["headers"]["authorization"] == f"Bearer {chain.text}"
    assert "dpop" not in request["headers"]


def test_openai_with_a_dpop_signing_client(provider, remits):
    chain, agent, jwks = remits
    client = remit.llm.openai_client(provider.url, "openai", chain, agent)
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hello"}])
    check_dpop(provider.only(), chain, jwks, f"{provider.url}/llm/openai/v1/chat/completions")


def test_async_openai_with_a_dpop_signing_client(provider, remits):
    chain, agent, jwks = remits

    async def go():
        client = remit.llm.async_openai_client(provider.url, "openai", chain, agent)
        return await client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}])

    assert anyio.run(go).choices[0].message.content == "hi"
    check_dpop(provider.only(), chain, jwks, f"{provider.url}/llm/openai/v1/chat/completions")


def test_anthropic_with_the_remit_as_api_key(provider, remits):
    chain, _, _ = remits
    client = remit.llm.anthropic_client(provider.url, "anthropic", chain)
    answer = client.messages.create(model="claude-test", max_tokens=8, messages=[{"role": "user", "content": "hello"}])
    assert answer.content[0].text == "hi"
    request = provider.only()
    assert request["path"] == "/llm/anthropic/v1/messages"
    assert request["headers"]["authorization"] == f"Bearer {chain.text}"


def test_anthropic_with_a_dpop_signing_client_sends_the_chain_once(provider, remits):
    chain, agent, jwks = remits
    client = remit.llm.anthropic_client(provider.url, "anthropic", chain, agent)
    client.messages.create(model="claude-test", max_tokens=8, messages=[{"role": "user", "content": "hello"}])
    headers = check_dpop(provider.only(), chain, jwks, f"{provider.url}/llm/anthropic/v1/messages")
    assert "x-api-key" not in headers


def test_a_route_is_one_path_segment():
    with pytest.raises(ValueError):
        remit.llm.egress_url("http://gw", "../admin")
