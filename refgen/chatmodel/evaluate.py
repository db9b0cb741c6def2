"""Held-out accuracy of the TinyQwen chat model, and the greedy-ids fixture.

    python refgen/chatmodel/evaluate.py --model models/tinyqwen-chat \
        --out refgen/chatmodel/eval_results.json --fixture refgen/chatmodel/greedy_fixture.json

Asks fresh single-turn questions (corpus.heldout, seed 777 by default, 100 per skill),
generates greedily with Hugging Face `generate` (float32 compute from the bf16
weights, eager attention) and checks each answer with corpus.check. Prints a
Markdown accuracy table. With --fixture it also writes, for a fixed set of prompts,
the prompt ids and the greedy ids that `generate` produces (max_new_tokens 48,
stopping at an eos id), which the Go Week 1 Generate must reproduce exactly.
"""

import argparse
import hashlib
import json
import os
import platform
import re
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402

# The committed fixture prompts: every skill, a multi-turn chat, a custom system
# prompt, and text that needs NFC normalisation and multi-byte UTF-8.
FIXTURE_PROMPTS = [
    [{"role": "user", "content": "What is 358 + 467?"}],
    [{"role": "user", "content": "What is 902 - 358?"}],
    [{"role": "user", "content": "Reverse the list: red, green, blue, yellow"}],
    [{"role": "user", "content": "Sort these numbers: 42, 7, 19, 88, 3"}],
    [{"role": "user", "content": "How many times does the letter s appear in mississippi?"}],
    [{"role": "user", "content": "What is your name?"}],
    [{"role": "user", "content": "Hello!"}],
    [{"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello! How can I help you today?"},
     {"role": "user", "content": "What is 75 + 48?"}],
    [{"role": "system", "content": "You are a concise assistant."},
     {"role": "user", "content": "Count the letter e in committee."}],
    [{"role": "user", "content": "Cafe\u0301 cr\u00e8me \U0001F44B! What is 12 + 30?"}],
]
FIXTURE_MAX_NEW_TOKENS = 48


def load(model_dir, device):
    from transformers import AutoTokenizer, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = Qwen2ForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    model.to(device).eval()
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    rp = getattr(model.config, "rope_parameters", None) or {}
    theta = rp.get("rope_theta", getattr(model.config, "rope_theta", None))
    assert theta == cfg["rope_theta"], (theta, cfg["rope_theta"])
    return tok, model


def eos_ids(model_dir):
    gen = json.load(open(os.path.join(model_dir, "generation_config.json")))
    e = gen["eos_token_id"]
    return e if isinstance(e, list) else [e]


def prompt_ids(tok, messages):
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text, tok(text, add_special_tokens=False)["input_ids"]


@torch.no_grad()
def generate(model, tok, prompts, eos, max_new, device, batch_size):
    """Greedy continuations (new ids, eos included when reached) for lists of ids."""
    outs = []
    pad = tok.pad_token_id
    for s in range(0, len(prompts), batch_size):
        chunk = prompts[s:s + batch_size]
        L = max(len(p) for p in chunk)
        ids = torch.full((len(chunk), L), pad, dtype=torch.long)
        att = torch.zeros((len(chunk), L), dtype=torch.long)
        for i, p in enumerate(chunk):  # left padding
            ids[i, L - len(p):] = torch.tensor(p)
            att[i, L - len(p):] = 1
        seq = model.generate(input_ids=ids.to(device), attention_mask=att.to(device), do_sample=False,
                             max_new_tokens=max_new, eos_token_id=eos, pad_token_id=pad)
        for i in range(len(chunk)):
            new = seq[i, L:].tolist()
            for j, t in enumerate(new):
                if t in eos:
                    new = new[:j + 1]
                    break
            outs.append(new)
    return outs


def evaluate(model_dir, device, seed, n_per_skill, batch_size, lead_ins=False):
    tok, model = load(model_dir, device)
    eos = eos_ids(model_dir)
    items = corpus.heldout(seed, n_per_skill, lead_ins)
    prompts = [prompt_ids(tok, it["messages"])[1] for it in items]
    t0 = time.time()
    outs = generate(model, tok, prompts, eos, 64, device, batch_size)
    secs = time.time() - t0
    per = {s: [0, 0, 0] for s in corpus.SKILL_NAMES}  # correct, exact, total
    failures = []
    for it, new in zip(items, outs):
        text = tok.decode(new, skip_special_tokens=True)
        ok = corpus.check(it, text)
        per[it["skill"]][0] += ok
        per[it["skill"]][1] += text == it["reference"]
        per[it["skill"]][2] += 1
        if not ok:
            failures.append({"id": it["id"], "question": it["question"], "answer": text,
                             "reference": it["reference"]})
    table = {s: {"correct": c, "exact": e, "total": n, "accuracy": c / n} for s, (c, e, n) in per.items()}
    return {"seed": seed, "n_per_skill": n_per_skill, "lead_ins": lead_ins, "device": device, "batch_size": batch_size,
            "generate_seconds": round(secs, 1), "skills": table, "failures": failures}


def markdown(result):
    lines = ["| skill | correct | accuracy | exact reference answer |", "| --- | --- | --- | --- |"]
    for s, r in result["skills"].items():
        lines.append(f"| {s} | {r['correct']}/{r['total']} | {100 * r['accuracy']:.0f}% | "
                     f"{100 * r['exact'] / r['total']:.0f}% |")
    return "\n".join(lines)


@torch.no_grad()
def fixture(model_dir, device):
    import tokenizers
    import transformers

    tok, model = load(model_dir, device)
    eos = eos_ids(model_dir)
    cases = []
    for messages in FIXTURE_PROMPTS:
        text, ids = prompt_ids(tok, messages)
        x = torch.tensor([ids], device=device)
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False,
                             max_new_tokens=FIXTURE_MAX_NEW_TOKENS, eos_token_id=eos,
                             pad_token_id=tok.pad_token_id, output_scores=True, return_dict_in_generate=True)
        new = out.sequences[0, len(ids):].tolist()
        margins = []
        for sc in out.scores:
            top = torch.topk(sc[0].float(), 2).values
            margins.append(float(top[0] - top[1]))
        cases.append({
            "messages": messages,
            "prompt_text": text,
            "prompt_ids": ids,
            "generated_ids": new,
            "generated_text": tok.decode(new, skip_special_tokens=True),
            "stopped_at_eos": bool(new) and new[-1] in eos,
            "min_top2_logit_margin": round(min(margins), 4),
        })
    with open(os.path.join(model_dir, "model.safetensors"), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return {
        "generator": "refgen/chatmodel/evaluate.py --fixture (Hugging Face generate, greedy, "
                     "float32 compute from the bf16 weights, eager attention, batch 1, CPU)",
        "note": "generated_ids are the new ids only; they end with the eos id when generation stopped "
                "there (eos_token_id list from generation_config.json), else after max_new_tokens. "
                "min_top2_logit_margin is the smallest gap between the best and second-best logit over "
                "the generated steps.",
        "model": model_dir,
        "model_sha256": digest,
        "eos_token_id": eos,
        "max_new_tokens": FIXTURE_MAX_NEW_TOKENS,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
        "cases": cases,
    }


def dump_fixture(fx):
    """JSON with each id list on one line."""
    text = json.dumps(fx, indent=1, ensure_ascii=False)
    return re.sub(r"\[\s*(-?\d+(?:,\s*-?\d+)*)\s*\]",
                  lambda m: "[" + ", ".join(re.split(r",\s*", m.group(1))) + "]", text) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models/tinyqwen-chat")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=corpus.HELDOUT_SEED)
    p.add_argument("--n-per-skill", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=1,
                   help="1 reproduces the unbatched greedy path the Go engine takes")
    p.add_argument("--lead-ins", action="store_true",
                   help='put every question behind a lead-in ("And ", "Now ", ...), a robustness check')
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--fixture", help="write the greedy-ids fixture here")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.n_per_skill > 0:
        res = evaluate(args.model, args.device, args.seed, args.n_per_skill, args.batch_size, args.lead_ins)
        print(markdown(res))
        print(f"generation took {res['generate_seconds']} s; {len(res['failures'])} failures")
        for f in res["failures"][:30]:
            print(f"  FAIL {f['id']}: {f['question']!r} -> {f['answer']!r}")
        if args.out:
            with open(args.out, "w") as f:
                json.dump(res, f, indent=1)
                f.write("\n")
    if args.fixture:
        fx = fixture(args.model, args.device)
        with open(args.fixture, "w") as f:
            f.write(dump_fixture(fx))
        for c in fx["cases"]:
            print(f"fixture: {c['generated_text']!r} margin {c['min_top2_logit_margin']}")


if __name__ == "__main__":
    main()
