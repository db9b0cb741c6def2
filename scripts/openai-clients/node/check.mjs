// The official OpenAI Node client, unchanged, against `tinyllm serve`.
//
// Usage: node check.mjs BASE_URL   (e.g. http://127.0.0.1:8000/v1)
//
// The same checks as ../python/check.py: one line each, the first failure
// exits non-zero.
import OpenAI from "openai";

const QUESTION = [{ role: "user", content: "What is 348 + 275?" }];
let passed = 0;

function check(name, cond, detail) {
  if (!cond) {
    console.log(`FAIL node ${name}: ${detail}`);
    process.exit(1);
  }
  passed++;
  console.log(`ok   node ${name}`);
}

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "unused", maxRetries: 0 });

const models = await client.models.list();
const model = models.data[0].id;
check("models.list", model === "tinyqwen-chat", model);

const r = await client.chat.completions.create({ model, messages: QUESTION, temperature: 0, max_tokens: 32 });
const text = r.choices[0].message.content;
check("chat", text.includes("623") && r.choices[0].finish_reason === "stop", JSON.stringify(r));
check("chat usage", r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens, JSON.stringify(r.usage));

const stream = await client.chat.completions.create({
  model, messages: QUESTION, temperature: 0, max_tokens: 32, stream: true, stream_options: { include_usage: true },
});
let got = "", finish = null, usage = null;
for await (const chunk of stream) {
  for (const c of chunk.choices) {
    got += c.delta.content ?? "";
    finish = c.finish_reason ?? finish;
  }
  usage = chunk.usage ?? usage;
}
check("chat stream", got === text && finish === "stop", JSON.stringify(got));
check("chat stream usage", usage && usage.completion_tokens === r.usage.completion_tokens, JSON.stringify(usage));

const s = await client.chat.completions.create({ model, messages: QUESTION, temperature: 0, max_tokens: 32, stop: "=" });
check("chat stop", s.choices[0].message.content === text.slice(0, text.indexOf("=")) && s.choices[0].finish_reason === "stop",
  JSON.stringify(s.choices[0]));

const conv = [{ role: "system", content: "You are terse." }, { role: "user", content: "Hi" },
  { role: "assistant", content: "Hello!" }, { role: "user", content: "What is 2 + 2?" }];
const seeded = () => client.chat.completions.create({ model, messages: conv, temperature: 0.8, top_p: 0.9, seed: 7, max_completion_tokens: 16 });
const [a, b] = [await seeded(), await seeded()];
check("chat seed", a.choices[0].message.content === b.choices[0].message.content, JSON.stringify([a.choices, b.choices]));

const c = await client.completions.create({ model, prompt: "The capital of", max_tokens: 5, temperature: 0, stream: true });
let ctext = "", cfinish = null;
for await (const chunk of c) {
  for (const ch of chunk.choices) {
    ctext += ch.text;
    cfinish = ch.finish_reason ?? cfinish;
  }
}
check("completions stream", cfinish === "stop" || cfinish === "length", JSON.stringify({ ctext, cfinish }));

try {
  await client.chat.completions.create({ model: "no-such-model", messages: QUESTION });
  check("unknown model", false, "no error");
} catch (e) {
  check("unknown model", e instanceof OpenAI.NotFoundError && e.status === 404, String(e));
}
try {
  await client.chat.completions.create({ model, messages: QUESTION, n: 2 });
  check("n=2", false, "no error");
} catch (e) {
  check("n=2", e instanceof OpenAI.BadRequestError && e.status === 400, String(e));
}

console.log(`node: ${passed} passed, 0 failed`);
