"""Hugging Face transformers on a CUDA GPU, timed as `tinyllm bench --device cuda` times
the Go engine (scripts/bench-gpu.sh runs both): time to first token after a prompt of
--prompt-len random ids, decode tok/s of the --gen-len - 1 steps after it (greedy,
KV cache), and the prefill rate of one forward pass over --prefill tokens. Medians of
--repeats runs after one untimed warm-up. Prints one JSON object.

    python refgen/bench/hf_gpu.py --model DIR --mode eager|compile [--prompt-len 128 --gen-len 64 --prefill 512]

--mode eager: the default dynamic cache, eager attention. --mode compile: a static
cache and torch.compile of the forward pass (mode reduce-overhead, which uses CUDA
graphs), the recipe of the transformers documentation; when that stack fails, the
error is reported in the JSON instead of numbers.
"""

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch
from transformers import AutoModelForCausalLM


def timed(fn):
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--mode", choices=["eager", "compile"], default="eager")
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--gen-len", type=int, default=64)
    p.add_argument("--prefill", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    res = {"engine": f"transformers {__import__('transformers').__version__} ({a.mode})", "torch": torch.__version__,
           "device": torch.cuda.get_device_name(), "model": a.model, "prompt_len": a.prompt_len, "gen_len": a.gen_len}
    try:
        model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.bfloat16,
                                                     attn_implementation="eager" if a.mode == "eager" else "sdpa").to("cuda").eval()
        vocab = model.config.vocab_size
        rng = np.random.default_rng(0)
        prompt = torch.from_numpy(rng.integers(0, vocab, size=(1, a.prompt_len))).to("cuda")
        long = torch.from_numpy(rng.integers(0, vocab, size=(1, a.prefill))).to("cuda")
        gen = dict(do_sample=False, min_new_tokens=a.gen_len, max_new_tokens=a.gen_len, pad_token_id=0)
        if a.mode == "compile":
            model.generation_config.cache_implementation = "static"
            model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)

        def first_token():
            with torch.no_grad():
                return model.generate(prompt, **dict(gen, min_new_tokens=1, max_new_tokens=1))

        def generate():
            with torch.no_grad():
                return model.generate(prompt, **gen)

        def prefill():
            with torch.no_grad():
                try:
                    return model(long, use_cache=True, logits_to_keep=1).logits
                except TypeError:  # older transformers
                    return model(long, use_cache=True, num_logits_to_keep=1).logits

        for fn in (first_token, generate, prefill):  # warm-up (and compilation)
            fn()
        ttft, decode, pre = [], [], []
        for _ in range(a.repeats):
            _, t1 = timed(first_token)
            out, tg = timed(generate)
            if out.shape[1] - a.prompt_len != a.gen_len:
                raise RuntimeError(f"generated {out.shape[1] - a.prompt_len} tokens, not {a.gen_len}")
            _, tp = timed(prefill)
            ttft.append(t1)
            decode.append((a.gen_len - 1) / max(tg - t1, 1e-9))
            pre.append(a.prefill / tp)
        res.update(ttft_s=statistics.median(ttft), decode_tok_s=statistics.median(decode),
                   prefill_tok_s=statistics.median(pre), prefill_len=a.prefill)
    except Exception as e:  # report, do not hide: the table says this stack failed
        res["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    json.dump(res, sys.stdout)
    print()


if __name__ == "__main__":
    main()
