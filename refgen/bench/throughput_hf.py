"""The throughput workload of `tinyllm bench --throughput` through Hugging Face
transformers' batched `generate`, for comparison (maintainers, on a machine
with PyTorch and transformers; a GPU machine for the H200 target).

The workload is nano-vllm's: N requests of random token ids, prompt and
output lengths uniform in [min_len, max_len], end-of-sequence ignored (every
request generates its full output length). Give it the very workload the Go
engine ran:

    tinyllm bench --throughput --model DIR --requests 256 --save-workload /tmp/w.json
    python refgen/bench/throughput_hf.py --model DIR --workload /tmp/w.json --device cuda

or let it draw its own from the same distribution (--requests, --seed,
--min-len, --max-len; numpy's generator, so not the Go engine's ids).

`generate` runs static batches: the prompts of a batch are left-padded to
the longest, and the batch decodes until its longest output is done. The
requests are sorted by output length and cut into batches of --batch-size
(0: all at once), which is the kindest order for static batching; output
tok/s counts only the tokens each request asked for, total tok/s adds the
prompts. Time to first token and inter-token latency are not measured
(generate returns whole batches).
"""

import argparse
import json
import statistics
import sys
import time


def draw_workload(n, lo, hi, vocab, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    ins = rng.integers(lo, hi + 1, size=n).tolist()
    outs = rng.integers(lo, hi + 1, size=n).tolist()
    prompts = [rng.integers(0, vocab, size=l).tolist() for l in ins]
    return prompts, outs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="Hugging Face model folder")
    ap.add_argument("--workload", help="a workload written by tinyllm bench --throughput --save-workload")
    ap.add_argument("--requests", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-len", type=int, default=100)
    ap.add_argument("--max-len", type=int, default=1024)
    ap.add_argument("--device", default="cuda", help="cuda or cpu")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--batch-size", type=int, default=0, help="requests per generate call (0: all at once)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for PyTorch (0: its default)")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    config = AutoConfig.from_pretrained(args.model)
    if args.workload:
        with open(args.workload) as f:
            w = json.load(f)
        prompts, outs = w["prompts"], w["output_lens"]
    else:
        lo, hi = args.min_len, args.max_len
        if 2 * hi > config.max_position_embeddings:  # the same scaling as tinyllm
            f = config.max_position_embeddings / (2 * hi)
            lo, hi = max(1, int(lo * f)), int(hi * f)
        prompts, outs = draw_workload(args.requests, lo, hi, config.vocab_size, args.seed)

    dtype = getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype, attn_implementation="sdpa").to(args.device)
    model.eval()
    pad = config.pad_token_id if config.pad_token_id is not None else 0

    order = sorted(range(len(prompts)), key=lambda i: outs[i])
    bs = args.batch_size or len(order)
    batches = [order[i : i + bs] for i in range(0, len(order), bs)]

    def run_batch(idx):
        width = max(len(prompts[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):  # left padding: every prompt ends at the last column
            p = prompts[i]
            ids[r, width - len(p) :] = torch.tensor(p)
            mask[r, width - len(p) :] = 1
        n = max(outs[i] for i in idx)
        with torch.inference_mode():
            model.generate(
                input_ids=ids.to(args.device),
                attention_mask=mask.to(args.device),
                max_new_tokens=n,
                min_new_tokens=n,  # end-of-sequence ignored
                do_sample=False,
                pad_token_id=pad,
            )

    # One small untimed batch first: kernels compiled, memory pools warm.
    run_batch(order[: min(4, len(order))])
    if args.device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    times = []
    for b in batches:
        t0 = time.perf_counter()
        run_batch(b)
        if args.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        print(f"  batch of {len(b)} requests: {times[-1]:.2f} s", file=sys.stderr)
    seconds = time.perf_counter() - start

    out_tokens = sum(outs)
    prompt_tokens = sum(len(p) for p in prompts)
    res = {
        "tool": "refgen/bench/throughput_hf.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "dtype": args.dtype,
        "model": args.model,
        "requests": len(prompts),
        "batch_size": bs,
        "prompt_tokens": prompt_tokens,
        "output_tokens": out_tokens,
        "seconds": seconds,
        "output_tok_per_s": out_tokens / seconds,
        "total_tok_per_s": (prompt_tokens + out_tokens) / seconds,
        "median_batch_s": statistics.median(times),
    }
    print(f"HF transformers {transformers.__version__} generate, {res['device']}, {args.dtype}, {len(prompts)} requests in batches of {bs}")
    print(f"  {prompt_tokens} prompt + {out_tokens} output tokens in {seconds:.2f} s")
    print(f"  output throughput {res['output_tok_per_s']:.1f} tok/s, total {res['total_tok_per_s']:.1f} tok/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
