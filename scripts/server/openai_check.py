"""The official `openai` Python client against a running e5v-server, unchanged.

    python scripts/server/openai_check.py http://127.0.0.1:18080

Checks: texts (the client asks for base64 and decodes it itself) equal the server's float
answer; images through `extra_body` (infinity's `modality`); a composed query through vLLM's
`messages`; `dimensions` and a wrong model come back as the client's typed errors.
"""

import base64
import json
import pathlib
import sys
import urllib.request

import openai

url = sys.argv[1]
client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused")
root = pathlib.Path(__file__).resolve().parents[2]


def raw(body):
    request = urllib.request.Request(
        f"{url}/v1/embeddings",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def close(a, b):
    return len(a) == len(b) and max(abs(x - y) for x, y in zip(a, b)) < 1e-6


texts = ["a cat on a sofa", "two dogs in the snow"]
got = client.embeddings.create(model="e5-v", input=texts)
want = raw({"input": texts, "encoding_format": "float"})
assert [d.index for d in got.data] == [0, 1]
assert all(close(g.embedding, w["embedding"]) for g, w in zip(got.data, want["data"]))
assert got.usage.prompt_tokens == want["usage"]["prompt_tokens"] > 0
print(f"texts: {len(got.data)} vectors of {len(got.data[0].embedding)}, {got.usage.prompt_tokens} tokens")

png = (root / "fixtures/images/grad_499x300.png").read_bytes()
uri = "data:image/png;base64," + base64.b64encode(png).decode()
got = client.embeddings.create(model="e5-v", input=[uri], extra_body={"modality": "image"})
want = raw({"input": [uri], "modality": "image"})
assert close(got.data[0].embedding, want["data"][0]["embedding"])
print(f"image: {got.usage.prompt_tokens} tokens")

messages = [{"role": "user", "content": [
    {"type": "image_url", "image_url": {"url": uri}},
    {"type": "text", "text": "make it blue"},
]}]
# The client's embeddings.create needs `input`; vLLM's documented way to send `messages` is
# the client's own post with the response type.
got = client.post(
    "/embeddings",
    body={"model": "e5-v", "messages": messages, "encoding_format": "float"},
    cast_to=openai.types.CreateEmbeddingResponse,
)
want = raw({"messages": messages})
assert close(got.data[0].embedding, want["data"][0]["embedding"])
print(f"composed (messages): {got.usage.prompt_tokens} tokens")

try:
    client.embeddings.create(model="e5-v", input="x", dimensions=64)
    raise AssertionError("dimensions accepted")
except openai.BadRequestError as e:
    assert e.body["code"] == "dimensions_unsupported", e.body
try:
    client.embeddings.create(model="gpt-4", input="x")
    raise AssertionError("another model accepted")
except openai.NotFoundError as e:
    assert e.body["code"] == "model_not_found", e.body
print("errors: typed (BadRequestError, NotFoundError)")
print("ok: the openai client talks to e5v-server unchanged")
