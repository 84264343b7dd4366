"""The official `openai` Python client against a live `kiln serve`.

Run: python3 tests/server/test_openai.py [path/to/kiln]
Starts the server on a free port with the tiny llama fixture (and again with
an API key), exercises the API as OpenAI's SDK does, and exits non-zero on
the first failed check.
"""

import json
import os
import re
import subprocess
import sys

import openai

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KILN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "debug", "kiln")
MODEL_DIR = os.path.join(ROOT, "tests", "data", "models", "llama")
EMBED_DIR = os.path.join(ROOT, "tests", "data", "encoders", "bert")


class Server:
    """`kiln serve` on port 0; the bound address comes from its stdout."""

    def __init__(self, *extra):
        self.proc = subprocess.Popen(
            [KILN, "serve", "--model", f"tiny={MODEL_DIR}", "--embedding-model", f"embed={EMBED_DIR}",
             "--port", "0", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for line in self.proc.stdout:
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                self.base = m.group(1)
                break
        else:
            raise RuntimeError("kiln serve did not start")

    def close(self):
        self.proc.terminate()
        assert self.proc.wait(timeout=30) == 0, "kiln serve did not shut down cleanly"


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok - {what}")


def tools_model_dir():
    """The qwen2 fixture with a chat template that renders tools and room
    for their definitions (a 2048-token context), in a temporary directory."""
    import shutil
    import tempfile

    source = os.path.join(ROOT, "tests", "data", "models", "qwen2")
    out = tempfile.mkdtemp(prefix="kiln-tools-model-")
    for name in os.listdir(source):
        if name not in ("tokenizer_config.json", "config.json"):
            shutil.copy(os.path.join(source, name), out)
    with open(os.path.join(source, "config.json")) as f:
        config = json.load(f)
    config["max_position_embeddings"] = 2048
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(ROOT, "tests", "data", "templates", "hermes-tools.jinja")) as f:
        template = f.read()
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "chat_template": template}, f)
    return out


def tool_checks(client):
    """Native tool calls as the SDK sends and reads them: forced calls
    (`tool_choice` required / a named function) always parse, also streamed;
    the result goes back as a `tool` message; `none`; a template without tools."""
    weather = {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "maxLength": 12},
            "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"]}}}
    clock = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
    ask = [{"role": "user", "content": "What's the weather in Oslo?"}]
    r = client.chat.completions.create(model="tools", messages=ask, tools=[weather, clock],
                                       tool_choice={"type": "function", "function": {"name": "get_weather"}},
                                       max_tokens=200, temperature=0)
    call = r.choices[0].message.tool_calls[0]
    args = json.loads(call.function.arguments)
    check(r.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
          and isinstance(args["city"], str) and args["unit"] in ("celsius", "fahrenheit"),
          f"named tool_choice gives a valid call: {call.function.name}({call.function.arguments})")
    r = client.chat.completions.create(model="tools", messages=ask, tools=[weather, clock],
                                       tool_choice="required", max_tokens=200, temperature=0.8, seed=5)
    name = r.choices[0].message.tool_calls[0].function.name
    check(name in ("get_weather", "get_time"), f"tool_choice=required gives a call: {name}")
    stream = client.chat.completions.create(model="tools", messages=ask, tools=[weather],
                                            tool_choice="required", max_tokens=200, temperature=0, stream=True)
    deltas = [c.choices[0].delta for c in stream if c.choices]
    streamed = [tc for d in deltas for tc in (d.tool_calls or [])]
    check(len(streamed) == 1 and streamed[0].function.name == "get_weather"
          and json.loads(streamed[0].function.arguments) == args,
          "a streamed forced call arrives whole in the deltas")
    follow = ask + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "12 C, light rain"},
    ]
    r = client.chat.completions.create(model="tools", messages=follow, tools=[weather], tool_choice="none",
                                       max_tokens=8, temperature=0)
    check(r.choices[0].message.tool_calls is None and r.choices[0].finish_reason in ("stop", "length"),
          "the tool result goes back as a tool message; tool_choice=none answers in text")
    try:
        client.chat.completions.create(model="tiny", messages=ask, tools=[weather], max_tokens=4)
        check(False, "tools refused for a template without them")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and "does not support tools" in str(e),
              "tools for a template that cannot render them -> 400")
    try:
        client.chat.completions.create(model="tools", messages=ask, tools=[weather],
                                       tool_choice={"type": "function", "function": {"name": "nope"}})
        check(False, "an unknown forced function is refused")
    except openai.BadRequestError as e:
        check("not in tools" in str(e), "tool_choice naming an unknown function -> 400")


def main():
    tools = Server("--model", f"tools={tools_model_dir()}")
    try:
        tool_checks(openai.OpenAI(base_url=tools.base + "/v1", api_key="unused", max_retries=0))
    finally:
        tools.close()
    server = Server()
    try:
        run_checks(openai.OpenAI(base_url=server.base + "/v1", api_key="unused"))
        structured_checks(openai.OpenAI(base_url=server.base + "/v1", api_key="unused"))
    finally:
        server.close()
    keyed = Server("--api-key", "s3cret")
    try:
        bad = openai.OpenAI(base_url=keyed.base + "/v1", api_key="wrong", max_retries=0)
        try:
            bad.models.list()
            check(False, "wrong key refused")
        except openai.AuthenticationError as e:
            check(e.status_code == 401, "wrong API key -> 401 AuthenticationError")
        good = openai.OpenAI(base_url=keyed.base + "/v1", api_key="s3cret")
        check([m.id for m in good.models.list()] == ["tiny", "embed"], "right API key works")
    finally:
        keyed.close()
    adapted = Server("--adapter", "lora=" + os.path.join(ROOT, "tests", "data", "models", "llama-lora"))
    try:
        client = openai.OpenAI(base_url=adapted.base + "/v1", api_key="unused")
        models = [m.id for m in client.models.list()]
        check(models == ["tiny", "tiny:lora", "embed"], f"adapters are listed: {models}")
        def greedy(**kw):
            return client.completions.create(prompt=[1, 928, 998, 929], max_tokens=12, temperature=0,
                                             **kw).choices[0].text
        by_name = greedy(model="tiny:lora", extra_body={"ignore_eos": True})
        by_field = greedy(model="tiny", extra_body={"ignore_eos": True, "lora": "lora"})
        base = greedy(model="tiny", extra_body={"ignore_eos": True})
        check(by_name == by_field, "model BASE:NAME and the lora field pick the same adapter")
        check(by_name != base, "the adapter changes the output")
        try:
            greedy(model="tiny", extra_body={"lora": "nope"})
            check(False, "unknown adapter refused")
        except openai.NotFoundError as e:
            check(e.status_code == 404, "unknown adapter -> 404")
    finally:
        adapted.close()


def structured_checks(client):
    """response_format: json_schema (validated by `jsonschema`, and parsed by
    the SDK into a pydantic model), json_object, streaming, bad schemas."""
    import jsonschema
    import pydantic

    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 20},
            "age": {"type": "integer"},
            "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3},
            "pet": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["name", "age", "tags", "pet"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}}
    messages = [{"role": "user", "content": "Describe a person as JSON."}]
    for seed in range(8):
        r = client.chat.completions.create(model="tiny", messages=messages, max_tokens=120,
                                           temperature=1.0, seed=seed, response_format=fmt)
        content = r.choices[0].message.content
        jsonschema.validate(json.loads(content), schema)
        check(r.choices[0].finish_reason == "stop", f"json_schema output valid (seed {seed}): {content}")

    stream = client.chat.completions.create(model="tiny", messages=messages, max_tokens=120,
                                            temperature=1.0, seed=3, response_format=fmt, stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    jsonschema.validate(json.loads(streamed), schema)
    check(True, "streamed json_schema output is valid too")

    class Person(pydantic.BaseModel):
        name: str
        age: int
        likes_tea: bool

    parsed = client.chat.completions.parse(model="tiny", messages=messages, max_tokens=120,
                                           temperature=0.7, seed=5, response_format=Person)
    person = parsed.choices[0].message.parsed
    check(isinstance(person, Person), f"the SDK's parse() gets a pydantic object: {person!r}")

    obj = client.chat.completions.create(model="tiny", messages=messages, max_tokens=80, temperature=1.0,
                                         seed=9, response_format={"type": "json_object"})
    check(isinstance(json.loads(obj.choices[0].message.content), dict), "json_object gives an object")

    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "a+"}}}
    try:
        client.chat.completions.create(model="tiny", messages=messages, max_tokens=5, response_format=bad)
        check(False, "unsupported schema keyword refused")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and "pattern" in str(e), "unsupported keyword -> 400 naming it")


def run_checks(client):
    models = [m.id for m in client.models.list()]
    check(models == ["tiny", "embed"], f"models.list -> {models}")

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    whole = client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=12, temperature=0.8, seed=42
    )
    text = whole.choices[0].message.content
    check(whole.object == "chat.completion" and whole.choices[0].message.role == "assistant",
          "chat completion shape")
    check(len(text) > 0, f"chat text {text!r}")
    u = whole.usage
    check(u.completion_tokens <= 12 and u.prompt_tokens > 0
          and u.total_tokens == u.prompt_tokens + u.completion_tokens, f"usage {u}")

    stream = client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=12, temperature=0.8, seed=42,
        stream=True, stream_options={"include_usage": True},
    )
    deltas, roles, finish, usage = [], [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.role:
                roles.append(c.delta.role)
            if c.delta.content:
                deltas.append(c.delta.content)
            if c.finish_reason:
                finish = c.finish_reason
    check("".join(deltas) == text, "streamed deltas concatenate to the non-streamed text (same seed)")
    check(roles == ["assistant"], "role in the first delta")
    check(finish == whole.choices[0].finish_reason, f"finish_reason {finish}")
    check(usage is not None and usage.completion_tokens == u.completion_tokens, "include_usage chunk")

    many = client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=8, temperature=1.0, seed=1, n=3,
        extra_body={"ignore_eos": True},
    )
    check([c.index for c in many.choices] == [0, 1, 2], "n=3 gives three choices")
    check(len({c.message.content for c in many.choices}) > 1, "n=3 choices differ when sampling")
    check(many.usage.completion_tokens == 24, "n=3 usage counts every choice's tokens")

    greedy = client.completions.create(
        model="tiny", prompt="The capital of", max_tokens=16, temperature=0,
        extra_body={"ignore_eos": True},
    )
    gtext = greedy.choices[0].text
    check(greedy.object == "text_completion" and greedy.usage.completion_tokens == 16,
          f"completion, 16 tokens: {gtext!r}")
    again = client.completions.create(model="tiny", prompt="The capital of", max_tokens=16,
                                      temperature=0, extra_body={"ignore_eos": True})
    check(again.choices[0].text == gtext, "greedy completions are deterministic")
    echo = client.completions.create(model="tiny", prompt="The capital of", max_tokens=16,
                                     temperature=0, echo=True, extra_body={"ignore_eos": True})
    check(echo.choices[0].text == "The capital of" + gtext, "echo puts the prompt first")

    # Stop strings: cut at the first occurrence of a piece of the greedy text.
    stop = gtext[3:6]
    if stop.strip():
        cut = client.completions.create(model="tiny", prompt="The capital of", max_tokens=16,
                                        temperature=0, stop=[stop], extra_body={"ignore_eos": True})
        check(cut.choices[0].text == gtext[: gtext.index(stop)] and cut.choices[0].finish_reason == "stop",
              f"stop string {stop!r}")

    ids = client.completions.create(model="tiny", prompt=[1, 30, 40], max_tokens=4, temperature=0)
    check(ids.usage.prompt_tokens == 3, "token-id prompts")

    lp = client.chat.completions.create(model="tiny", messages=messages, max_tokens=5, temperature=0,
                                        logprobs=True, top_logprobs=3)
    content = lp.choices[0].logprobs.content
    check(len(content) == lp.usage.completion_tokens, "one logprob entry per token")
    check(all(len(t.top_logprobs) == 3 and t.logprob <= 0 for t in content), "top_logprobs=3")
    check(all(abs(t.logprob - t.top_logprobs[0].logprob) < 1e-5 for t in content),
          "greedy tokens are the most likely")
    clp = client.completions.create(model="tiny", prompt="Hi", max_tokens=4, temperature=0, logprobs=2)
    check(len(clp.choices[0].logprobs.token_logprobs) == 4
          and all(len(t) <= 2 for t in clp.choices[0].logprobs.top_logprobs), "legacy logprobs")

    extra = client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=6,
        extra_body={"top_k": 1, "repetition_penalty": 1.2, "min_p": 0.1, "num_beams": 1},
    )
    check(extra.usage.completion_tokens > 0, "kiln's extra sampling fields are accepted")

    for kwargs, err, what in [
        (dict(model="nope"), openai.NotFoundError, "unknown model -> 404"),
        (dict(model="tiny", temperature=-1), openai.BadRequestError, "temperature < 0 -> 400"),
        (dict(model="tiny", top_p=1.5), openai.BadRequestError, "top_p > 1 -> 400"),
        (dict(model="tiny", n=999), openai.BadRequestError, "n over the limit -> 400"),
        (dict(model="tiny", max_tokens=10**6), openai.BadRequestError, "max_tokens past the context -> 400"),
    ]:
        try:
            client.with_options(max_retries=0).chat.completions.create(messages=messages, **kwargs)
            check(False, what)
        except err as e:
            check(isinstance(e.body, dict) and "message" in e.body, what)

    texts = ["Hello world", "Retrieval augmented generation"]
    want = json.loads(subprocess.run([KILN, "embed", "--model", EMBED_DIR, "--json"]
                                     + [a for t in texts for a in ("--text", t)],
                                     capture_output=True, text=True, check=True).stdout)["embeddings"]
    # The SDK asks for base64 by default and decodes it; also ask for floats.
    for fmt in ["default (base64 on the wire)", "float"]:
        extra = {"encoding_format": "float"} if fmt == "float" else {}
        got = client.embeddings.create(model="embed", input=texts, **extra)
        close = all(abs(a - b) < 1e-6 for g, w in zip(got.data, want) for a, b in zip(g.embedding, w))
        check(len(got.data) == 2 and close, f"embeddings ({fmt}) equal `kiln embed`")
    check(got.usage.prompt_tokens == 9, f"embedding usage {got.usage}")
    try:
        client.with_options(max_retries=0).embeddings.create(model="tiny", input="hello")
        check(False, "a chat model is not an embedding model")
    except openai.NotFoundError:
        check(True, "embeddings with a chat model -> 404")


if __name__ == "__main__":
    main()
