"""The official OpenAI Python client, unchanged, against `tinyllm serve`.

Usage: python check.py BASE_URL   (e.g. http://127.0.0.1:8000/v1)

Each check prints one line; the first failure exits non-zero. The shipped
model answers "What is 348 + 275?" with 623 (greedy), which is what the
answers are checked against.
"""
import sys

import openai

QUESTION = [{"role": "user", "content": "What is 348 + 275?"}]


def main(base_url: str) -> int:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    passed = 0

    def check(name, cond, detail=""):
        nonlocal passed
        if not cond:
            print(f"FAIL python {name}: {detail}")
            sys.exit(1)
        passed += 1
        print(f"ok   python {name}")

    models = client.models.list()
    model = models.data[0].id
    check("models.list", model == "tinyqwen-chat", f"model id {model!r}")

    r = client.chat.completions.create(model=model, messages=QUESTION, temperature=0, max_tokens=32)
    text = r.choices[0].message.content
    check("chat", "623" in text and r.choices[0].finish_reason == "stop", repr(r))
    check("chat usage", r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, repr(r.usage))

    stream = client.chat.completions.create(model=model, messages=QUESTION, temperature=0, max_tokens=32,
                                            stream=True, stream_options={"include_usage": True})
    parts, finish, usage = [], None, None
    for chunk in stream:
        for c in chunk.choices:
            parts.append(c.delta.content or "")
            finish = c.finish_reason or finish
        usage = chunk.usage or usage
    check("chat stream", "".join(parts) == text and finish == "stop", repr(parts))
    check("chat stream usage", usage is not None and usage.completion_tokens == r.usage.completion_tokens, repr(usage))

    s = client.chat.completions.create(model=model, messages=QUESTION, temperature=0, max_tokens=32, stop=["="])
    got = s.choices[0].message.content
    check("chat stop", got == text[: text.index("=")] and s.choices[0].finish_reason == "stop", repr(got))

    n = client.chat.completions.create(model=model, messages=QUESTION, temperature=0, max_tokens=3)
    check("chat length", n.choices[0].finish_reason == "length" and n.usage.completion_tokens == 3, repr(n))

    conv = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "What is 2 + 2?"}]
    a, b = (client.chat.completions.create(model=model, messages=conv, temperature=0.8, top_p=0.9, seed=7,
                                           max_completion_tokens=16) for _ in range(2))
    check("chat seed", a.choices[0].message.content == b.choices[0].message.content
          and a.choices[0].finish_reason in ("stop", "length"), repr((a, b)))

    c = client.completions.create(model=model, prompt="The capital of", max_tokens=5, temperature=0)
    check("completions", c.choices[0].finish_reason in ("stop", "length") and c.usage.prompt_tokens > 0, repr(c))

    try:
        client.chat.completions.create(model="no-such-model", messages=QUESTION)
        check("unknown model", False, "no error")
    except openai.NotFoundError as e:
        check("unknown model", e.status_code == 404, repr(e))
    try:
        client.chat.completions.create(model=model, messages=QUESTION, n=2)
        check("n=2", False, "no error")
    except openai.BadRequestError as e:
        check("n=2", e.status_code == 400, repr(e))

    print(f"python: {passed} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
