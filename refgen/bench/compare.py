"""bench-compare: the Go engine beside Hugging Face transformers (PyTorch, CPU)
and mlx-lm (MLX, CPU) on one checkpoint, with the same prompt and output
lengths and the same thread count, and the machine's ceilings beside each;
and the Week 2 engine (KV cache) beside llama.cpp (llama-cpp-python) on GGUF
files of the same checkpoint (refgen/bench/to_gguf.py).

`make bench-compare` runs the Go side (tinyllm bench, tinyllm bench --probes)
and then this script:

    python refgen/bench/compare.py --model DIR --tinyllm BIN --go-model GO.json --go-probes PROBES.json \
        --prompt-len 128 --gen-len 8 --repeats 3 --warmup 1 --threads 2 [--json OUT] \
        [--go-week2 GO2.json --go-long LONG.json --gguf-dir DIR]

Every engine runs in a subprocess of its own (this script with --worker, or
the tinyllm binary), so the peak resident memory it reports is its own.

The figures the targets compare are measured in pairs, in rounds: in each of
--repeats rounds the Go matmul probe runs beside PyTorch's, and a Go
prefill beside a transformers one, one right after the other (alternating
which goes first). On a machine that other work
shares, the load changes from minute to minute; a pair sees nearly the same
load, so the median of the per-round ratios is much steadier than the
ratio of two medians taken minutes apart. Everything else is a median over
--repeats timed runs after --warmup untimed ones.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.abspath(__file__)


def peak_rss_bytes():
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB


def set_threads(n):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
        os.environ[var] = str(n)


def prompt_ids(vocab, n, seed=0):
    import numpy as np

    return np.random.default_rng(seed).integers(0, vocab, size=n).tolist()


def worker_torch_matmul(args):
    import torch

    torch.set_num_threads(args.threads)
    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    rates = []
    for _ in range(max(10, args.repeats)):
        t = time.perf_counter()
        a @ b
        rates.append(2 * n**3 / (time.perf_counter() - t))
    return {"matmul_n": n, "matmul_gflop_s": statistics.median(rates) / 1e9, "torch": torch.__version__}


def worker_hf(args):
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).eval()
    load_s = time.perf_counter() - start
    ids = torch.tensor([prompt_ids(model.config.vocab_size, args.prompt_len)])
    mask = torch.ones_like(ids)
    eos = model.generation_config.eos_token_id
    gen = dict(do_sample=False, attention_mask=mask, pad_token_id=eos[0] if isinstance(eos, list) else eos)
    forward, ttft, total = [], [], []
    with torch.inference_mode():
        for i in range(args.warmup + args.repeats):
            t = time.perf_counter()
            model(ids, attention_mask=mask)  # every position's logits, as the Week 1 model computes
            f = time.perf_counter() - t
            t = time.perf_counter()
            model.generate(ids, max_new_tokens=1, **gen)
            first = time.perf_counter() - t
            t = time.perf_counter()
            model.generate(ids, max_new_tokens=args.gen_len, min_new_tokens=args.gen_len, **gen)
            all_s = time.perf_counter() - t
            if i >= args.warmup:
                forward.append(f)
                ttft.append(first)
                total.append(all_s)
    ttft_s, total_s = statistics.median(ttft), statistics.median(total)
    decode = (args.gen_len - 1) / (total_s - ttft_s) if args.gen_len > 1 and total_s > ttft_s else None
    return {
        "engine": f"transformers {args.dtype}",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "load_s": load_s,
        "forward_all_logits_s": statistics.median(forward),
        "ttft_s": ttft_s,
        "prefill_tok_s": args.prompt_len / ttft_s,
        "decode_tok_s": decode,
        "peak_rss_bytes": peak_rss_bytes(),
        "threads": torch.get_num_threads(),
    }


def worker_mlx(args):
    import mlx.core as mx
    import mlx_lm
    from mlx_lm import load, stream_generate

    mx.set_default_device(mx.cpu)
    start = time.perf_counter()
    model, tokenizer = load(args.model)
    load_s = time.perf_counter() - start
    with open(os.path.join(args.model, "config.json")) as f:
        vocab = json.load(f)["vocab_size"]
    ids = prompt_ids(vocab, args.prompt_len)
    eos = list(getattr(tokenizer, "eos_token_ids", []) or [])

    def no_eos(tokens, logits):  # generate exactly gen_len tokens
        if eos:
            logits[:, eos] = -float("inf")
        return logits

    ttft, decode = [], []
    for i in range(args.warmup + args.repeats):
        t = time.perf_counter()
        first = None
        n = 0
        for _ in stream_generate(model, tokenizer, ids, max_tokens=args.gen_len, logits_processors=[no_eos]):
            n += 1
            if first is None:
                first = time.perf_counter()
        end = time.perf_counter()
        if i >= args.warmup:
            ttft.append(first - t)
            if n > 1:
                decode.append((n - 1) / (end - first))
    ttft_s = statistics.median(ttft)
    return {
        "engine": "mlx-lm (MLX CPU)",
        "versions": {"mlx": mx.__version__, "mlx_lm": mlx_lm.__version__},
        "load_s": load_s,
        "ttft_s": ttft_s,
        "prefill_tok_s": args.prompt_len / ttft_s,
        "decode_tok_s": statistics.median(decode) if decode else None,
        "peak_rss_bytes": peak_rss_bytes(),
        "threads": "MLX's own (OMP/BLAS thread variables set to %d)" % args.threads,
    }


def worker_llama(args):
    """llama.cpp (through llama-cpp-python) on a GGUF file of the same weights:
    the prompt in one batch, then greedy decode steps of one token each."""
    import llama_cpp
    import numpy as np

    start = time.perf_counter()
    llm = llama_cpp.Llama(model_path=args.gguf, n_ctx=args.prompt_len + args.gen_len + 16,
                          n_batch=max(512, args.prompt_len), n_ubatch=max(512, args.prompt_len),
                          n_threads=args.threads, n_threads_batch=args.threads, verbose=False)
    load_s = time.perf_counter() - start
    vocab = llm.n_vocab()
    ids = prompt_ids(vocab, args.prompt_len)

    def next_token():
        # Without logits_all, eval keeps no scores: read the context's
        # logits of the last position, the one output of the batch.
        return int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(vocab,))))

    ttft, decode = [], []
    for i in range(args.warmup + args.repeats):
        llm.reset()  # the next eval drops the cached positions
        t = time.perf_counter()
        llm.eval(ids)
        tok = next_token()
        first = time.perf_counter()
        for _ in range(args.gen_len - 1):
            llm.eval([tok])
            tok = next_token()
        end = time.perf_counter()
        if i >= args.warmup:
            ttft.append(first - t)
            if args.gen_len > 1:
                decode.append((args.gen_len - 1) / (end - first))
    ttft_s = statistics.median(ttft)
    return {
        "engine": f"llama.cpp {os.path.basename(args.gguf)}",
        "versions": {"llama_cpp_python": llama_cpp.__version__},
        "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
        "load_s": load_s,
        "ttft_s": ttft_s,
        "prefill_tok_s": args.prompt_len / ttft_s,
        "decode_tok_s": statistics.median(decode) if decode else None,
        "peak_rss_bytes": peak_rss_bytes(),
        "gguf_bytes": os.path.getsize(args.gguf),
        "threads": args.threads,
    }


WORKERS = {"torch-matmul": worker_torch_matmul, "hf": worker_hf, "mlx": worker_mlx, "llama": worker_llama}


def run_go(args, argv):
    """Runs the tinyllm binary with --json and returns that JSON."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        p = subprocess.run([args.tinyllm, "bench", "--device", "cpu", "--threads", str(args.threads), *argv, "--json", f.name],
                           capture_output=True, text=True)
        if p.returncode != 0:
            return {"error": ((p.stderr or p.stdout).strip().splitlines() or ["no output"])[-1]}
        with open(f.name) as fh:
            return json.load(fh)


def paired_rounds(args):
    """The paired measurements: Go vs PyTorch matmul, Go vs transformers f32 prefill."""
    rounds = []
    for r in range(args.repeats):
        # Odd rounds run Go first, even rounds the other engine first, so
        # that neither always inherits the state the other left behind.
        def both(go, other):
            return (go(), other()) if r % 2 == 0 else tuple(reversed((other(), go())))

        print(f"  paired round {r + 1} of {args.repeats}: matmul…", file=sys.stderr, flush=True)
        go_mm, torch_mm = both(lambda: run_go(args, ["--probes", "--only", "matmul", "--repeats", "10"]),
                               lambda: run_worker(args, "torch-matmul", ["--repeats", "10"], quiet=True))
        print(f"  paired round {r + 1} of {args.repeats}: prefill…", file=sys.stderr, flush=True)
        go_pf, hf = both(lambda: run_go(args, ["--model", args.model, "--prompt-len", str(args.prompt_len), "--gen-len", "1",
                                               "--repeats", "1", "--warmup", str(max(1, args.warmup)), "--all-logits"]),
                         lambda: run_worker(args, "hf", ["--dtype", "float32", "--repeats", "1"], quiet=True))
        rounds.append({"go_matmul": go_mm, "torch_matmul": torch_mm, "go_prefill": go_pf, "hf_f32": hf})
    return rounds


def llama_rounds(args):
    """The paired measurements of the Week 2 engine: a Go generation (prompt,
    then decode) beside llama.cpp's on the F16 GGUF, in each round."""
    rounds = []
    for r in range(args.repeats):
        def both(go, other):
            return (go(), other()) if r % 2 == 0 else tuple(reversed((other(), go())))

        print(f"  paired round {r + 1} of {args.repeats}: Week 2 engine and llama.cpp F16…", file=sys.stderr, flush=True)
        go, ll = both(lambda: run_go(args, ["--week", "2", "--model", args.model, "--prompt-len", str(args.prompt_len),
                                            "--gen-len", str(args.gen_len), "--repeats", "1",
                                            "--warmup", str(max(1, args.warmup))]),
                      lambda: run_worker(args, "llama", ["--gguf", gguf_path(args, "f16"), "--repeats", "1"], quiet=True))
        rd = {"go_week2": go, "llama_f16": ll}
        if args.long_len:
            # Decode far into the context right after the short run, so
            # that the two see nearly the same load: their ratio is the
            # target, and load moves decode speed by more than a long
            # context does.
            rd["go_long"] = run_go(args, ["--week", "2", "--model", args.model, "--prompt-len", str(args.long_len),
                                          "--gen-len", str(args.gen_len), "--repeats", "1", "--warmup", "0"])
        rounds.append(rd)
    return rounds


def q4_rounds(args):
    """The paired measurements of 4-bit weights: in each round, the Week 2
    engine on the MLX 4-bit checkpoint and llama.cpp on the Q4_0 GGUF of the
    same weights, one right after the other, alternating which goes first."""
    rounds = []
    for r in range(args.repeats):
        runs = [
            ("go_q4", lambda: run_go(args, ["--week", "2", "--model", args.mlx_q4, "--prompt-len", str(args.prompt_len),
                                            "--gen-len", str(args.gen_len), "--repeats", "1",
                                            "--warmup", str(max(1, args.warmup))])),
            ("llama_q4_0", lambda: run_worker(args, "llama", ["--gguf", gguf_path(args, "q4_0"), "--repeats", "1"], quiet=True)),
        ]
        if r % 2:
            runs.reverse()
        print(f"  paired round {r + 1} of {args.repeats}: 4-bit (Go and llama.cpp Q4_0)…", file=sys.stderr, flush=True)
        rounds.append({name: run() for name, run in runs})
    return rounds


def mlx_q4_once(args):
    """mlx-lm on the MLX 4-bit checkpoint, once, outside the rounds: its
    CPU backend runs the quantized product so slowly (7.5 minutes for a
    128-token prompt on a 2-core Xeon, 0.17 tok/s of decode) that pairing it
    in every round would take most of the benchmark. A 16-token prompt,
    eight generated tokens, no warm-up pass: decoding after 16 positions
    is, if anything, faster than after 128, so the comparison favours it."""
    print("  running mlx-lm on the 4-bit checkpoint (once, 16-token prompt)…", file=sys.stderr, flush=True)
    return run_worker(args, "mlx", ["--model", args.mlx_q4, "--repeats", "1", "--warmup", "0", "--gen-len", "8",
                                    "--prompt-len", "16"], quiet=True)


def q4_section(args, w, probes, qrounds, mlx_q4, med, get, pair):
    """The Week 2 engine on 4-bit weights beside llama.cpp Q4_0 (the paired
    rounds' medians) and mlx-lm (its one run), the rounds, and the 4-bit
    targets."""
    if not qrounds:
        return []
    mlx_q4 = mlx_q4 or {}
    names = ["Go (Week 2, MLX 4-bit)", "llama.cpp Q4_0", "mlx-lm CPU (MLX 4-bit)"]
    w("")
    w(f"4-bit weights (group 64): prompt {args.prompt_len} tokens, {args.gen_len} generated; medians of "
      f"{len(qrounds)} paired rounds of Go and llama.cpp (mlx-lm: one run, 16-token prompt, 8 tokens, not paired)")
    w(f"{'':<30}" + "".join(f"{n:>26}" for n in names))
    for label, key, scale, digits in [("prefill tok/s (prompt/TTFT)", "prefill_tok_s", 1, 1),
                                      ("time to first token (s)", "ttft_s", 1, 3), ("decode tok/s", "decode_tok_s", 1, 2),
                                      ("peak RSS (GB)", "peak_rss_bytes", 1e-9, 2)]:
        go_path = (key,) if key == "peak_rss_bytes" else ("result", key)  # tinyllm's JSON keeps rates in "result"
        go = med([get(r, "go_q4", *go_path) for r in qrounds])
        others = [med([get(r, "llama_q4_0", key) for r in qrounds]), mlx_q4.get(key)]
        cells = [fmt(go * scale if go else None, "", digits)]
        cells += ["—" if v is None else f"{fmt(v * scale, '', digits)} ({ratio(v, go)})" for v in others]
        w(f"  {label:<28}" + "".join(f"{c:>26}" for c in cells))
    w("  (ratios are engine / Go; the MLX checkpoint is `tinyllm quantize --bits 4 --group-size 64` of the")
    w("   benchmark checkpoint, the GGUF is to_gguf.py's Q4_0 of the same weights)")
    if "error" in mlx_q4:
        w(f"  mlx-lm failed: {mlx_q4['error']}")
    for i, rd in enumerate(qrounds):
        for k, v in rd.items():
            if isinstance(v, dict) and "error" in v:
                w(f"  round {i + 1} {k} failed: {v['error']}")
    go_dec = [get(r, "go_q4", "result", "decode_tok_s") for r in qrounds]
    ll_dec = [get(r, "llama_q4_0", "decode_tok_s") for r in qrounds]
    go_ttft = [get(r, "go_q4", "result", "ttft_s") for r in qrounds]
    ll_ttft = [get(r, "llama_q4_0", "ttft_s") for r in qrounds]
    w(f"  {'round':<8}{'Go decode':>12}{'llama decode':>14}{'Go TTFT':>10}{'llama TTFT':>12}")
    for i in range(len(qrounds)):
        w(f"  {i + 1:<8}{fmt(go_dec[i], '', 2):>12}{fmt(ll_dec[i], '', 2):>14}"
          f"{fmt(go_ttft[i], ' s', 3):>10}{fmt(ll_ttft[i], ' s', 3):>12}")
    checks = []
    r = pair(go_dec, ll_dec)
    if r:
        checks.append((f"4-bit decode ≥ 1.2× llama.cpp Q4_0: Go is {r:.2f}× as fast", r >= 1.2))
    go_med, mx = med(go_dec), mlx_q4.get("decode_tok_s")
    if go_med and mx:
        r = go_med / mx
        checks.append((f"4-bit decode ≥ 1.5× mlx-lm's CPU decode on the same checkpoint: Go is {r:.2f}× as fast "
                       f"(mlx-lm measured once)", r >= 1.5))
    r = pair(ll_ttft, go_ttft)
    if r:
        checks.append((f"4-bit prefill of {args.prompt_len} tokens at least as fast as llama.cpp Q4_0 (time to first "
                       f"token): Go is {r:.2f}× as fast", r >= 1))
    return checks


def gguf_path(args, kind):
    return os.path.join(args.gguf_dir, f"model-{kind}.gguf")


def run_worker(args, name, extra=(), quiet=False):
    """Runs one worker in a subprocess and returns its JSON (or an error)."""
    cmd = [sys.executable, HERE, "--worker", name, "--model", args.model, "--threads", str(args.threads),
           "--prompt-len", str(args.prompt_len), "--gen-len", str(args.gen_len),
           "--repeats", str(args.repeats), "--warmup", str(args.warmup), *extra]  # a later --repeats wins
    env = dict(os.environ)
    env.update({v: str(args.threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["TRANSFORMERS_VERBOSITY"] = "error"
    if not quiet:
        print(f"  running {name} {' '.join(extra)}…", file=sys.stderr, flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": tail[0]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fmt(v, unit="", digits=2):
    if v is None:
        return "—"
    return f"{v:.{digits}f}{unit}"


def ratio(other, go):
    if other is None or go in (None, 0):
        return "—"
    return f"{other / go:.2f}×"


GGUF_KINDS = ("f16", "q8_0", "q4_0")


def kv_cache_bytes(model_dir, positions):
    """The float32 keys and values of every layer for this many positions."""
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    head_dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    return 2 * c["num_hidden_layers"] * c["num_key_value_heads"] * head_dim * positions * 4


def week2_section(args, w, probes, lrounds, llamas, med, get, pair):
    """The Week 2 engine (KV cache) beside llama.cpp: the table, the paired
    rounds and the targets of the Week 2 engine. Returns the target checks."""
    if not args.go_week2:
        return []
    with open(args.go_week2) as f:
        go2 = json.load(f)
    long = None
    if args.go_long:
        with open(args.go_long) as f:
            long = json.load(f)
    r2 = go2["result"]
    ck = go2.get("checkpoint_bytes") or 0
    w("")
    w(f"Week 2 engine (KV cache) beside llama.cpp: prompt {r2['prompt_len']} tokens, {r2['gen_len']} generated")
    if ck and probes.get("stream_gb_s"):
        w(f"  decode ceiling at the streaming read: {probes['stream_gb_s'] * 1e9 / ck:.1f} tok/s "
          f"({ck / 1e9:.2f} GB of bf16 weights read once per token at {probes['stream_gb_s']:.1f} GB/s)")
    names = {"f16": "llama.cpp F16", "q8_0": "llama.cpp Q8_0", "q4_0": "llama.cpp Q4_0"}
    cols = ["Go (Week 2 ref)"] + [names[k] for k in llamas]
    w(f"{'':<30}" + "".join(f"{c:>22}" for c in cols))
    go_vals = {"prefill_tok_s": r2["prefill_tok_s"], "ttft_s": r2["ttft_s"], "decode_tok_s": r2["decode_tok_s"] or None,
               "peak_rss_bytes": go2.get("peak_rss_bytes"), "weights": ck}
    rows = [("prefill tok/s (prompt/TTFT)", "prefill_tok_s", 1, 1), ("time to first token (s)", "ttft_s", 1, 3),
            ("decode tok/s", "decode_tok_s", 1, 2), ("peak RSS (GB)", "peak_rss_bytes", 1e-9, 2),
            ("weights (GB)", "weights", 1e-9, 2)]
    for label, key, scale, digits in rows:
        cells = [fmt(go_vals[key] * scale if go_vals[key] else None, "", digits)]
        for e in llamas.values():
            v = e.get("gguf_bytes" if key == "weights" else key)
            if "error" in e:
                cells.append("error")
            elif v is None:
                cells.append("—")
            else:
                cells.append(f"{fmt(v * scale, '', digits)} ({ratio(v, go_vals[key])})")
        w(f"  {label:<28}" + "".join(f"{c:>22}" for c in cells))
    w("  (ratios are engine / Go; llama.cpp runs the GGUF files written from the same checkpoint by")
    w("   refgen/bench/to_gguf.py, every step greedy, a random prompt of the same length, the same thread count)")
    for k, e in llamas.items():
        if "error" in e:
            w(f"  {names[k]}: failed: {e['error']}")
    info = next((e.get("system_info") for e in llamas.values() if e.get("system_info")), None)
    if info:
        w(f"  llama.cpp {next(iter(llamas.values())).get('versions', {}).get('llama_cpp_python', '')}: {info}")

    go_dec = [get(r, "go_week2", "result", "decode_tok_s") for r in lrounds]
    ll_dec = [get(r, "llama_f16", "decode_tok_s") for r in lrounds]
    go_ttft = [get(r, "go_week2", "result", "ttft_s") for r in lrounds]
    ll_ttft = [get(r, "llama_f16", "ttft_s") for r in lrounds]
    if lrounds:
        w("")
        w("Paired rounds of the Week 2 engine and llama.cpp F16 (one right after the other, alternating)")
        w(f"  {'round':<8}{'Go decode':>12}{'llama decode':>14}{'Go TTFT':>10}{'llama TTFT':>12}")
        for i in range(len(lrounds)):
            w(f"  {i + 1:<8}{fmt(go_dec[i], '', 2):>12}{fmt(ll_dec[i], '', 2):>14}{fmt(go_ttft[i], ' s', 3):>10}"
              f"{fmt(ll_ttft[i], ' s', 3):>12}")
        for i, rd in enumerate(lrounds):
            for k, v in rd.items():
                if isinstance(v, dict) and "error" in v:
                    w(f"  round {i + 1} {k} failed: {v['error']}")

    checks = []
    dec_ratio = pair(go_dec, ll_dec)    # > 1: Go decodes faster
    pf_ratio = pair(ll_ttft, go_ttft)   # > 1: Go prefills faster
    if dec_ratio:
        checks.append((f"Week 2 decode at least as fast as llama.cpp F16: Go is {dec_ratio:.2f}× as fast", dec_ratio >= 1))
    if pf_ratio:
        checks.append((f"Week 2 prefill of {r2['prompt_len']} tokens at least as fast as llama.cpp F16 (time to first "
                       f"token): Go is {pf_ratio:.2f}× as fast", pf_ratio >= 1))
    long_dec = [get(r, "go_long", "result", "decode_tok_s") for r in lrounds]
    q = pair(long_dec, go_dec)
    if q:
        w(f"  decode after {args.long_len} tokens in the same rounds: " + ", ".join(fmt(x, '', 2) for x in long_dec)
          + f" tok/s against " + ", ".join(fmt(x, '', 2) for x in go_dec) + f" after {r2['prompt_len']}")
        checks.append((f"Week 2 decode after {args.long_len} tokens ≥ 0.8× after {r2['prompt_len']}: "
                       f"{q:.2f}× (median of the per-round ratios)", q >= 0.8))
    elif long and long["result"].get("decode_tok_s") and r2.get("decode_tok_s"):
        lr = long["result"]
        q = lr["decode_tok_s"] / r2["decode_tok_s"]
        checks.append((f"Week 2 decode after {lr['prompt_len']} tokens ≥ 0.8× after {r2['prompt_len']}: "
                       f"{lr['decode_tok_s']:.2f} against {r2['decode_tok_s']:.2f} tok/s = {q:.2f}× (not paired)", q >= 0.8))
    if long and long.get("peak_rss_bytes") and ck:
        lr = long["result"]
        kv = kv_cache_bytes(args.model, lr["prompt_len"] + lr["gen_len"])
        bound = 1.1 * (ck + kv)
        rss = long["peak_rss_bytes"]
        checks.append((f"Week 2 peak RSS after {lr['prompt_len']} tokens ≤ (checkpoint + KV cache) + 10%: "
                       f"{rss / 1e9:.3f} GB against {bound / 1e9:.3f} GB", rss <= bound))
    rss = go2.get("peak_rss_bytes")
    if ck and rss:
        kv = kv_cache_bytes(args.model, r2["prompt_len"] + r2["gen_len"])
        bound = 1.1 * (ck + kv)
        checks.append((f"Week 2 peak RSS ≤ (checkpoint + KV cache) + 10%: {rss / 1e9:.3f} GB against "
                       f"{bound / 1e9:.3f} GB ({ck / 1e9:.3f} + {kv / 1e9:.4f} GB, +10%)", rss <= bound))
    return checks


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--tinyllm", help="the tinyllm binary, for the paired rounds")
    p.add_argument("--go-model", help="JSON of `tinyllm bench --json`")
    p.add_argument("--go-probes", help="JSON of `tinyllm bench --probes --json`")
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--gen-len", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--go-week2", help="JSON of `tinyllm bench --week 2 --json` (the KV-cache engine)")
    p.add_argument("--go-long", help="JSON of the same at a long prompt, for decode speed far into the context")
    p.add_argument("--long-len", type=int, default=0,
                   help="also decode after this many prompt tokens in every llama.cpp round, beside the short run")
    p.add_argument("--gguf-dir", help="folder of model-f16.gguf (and model-q8_0.gguf, model-q4_0.gguf) for llama.cpp")
    p.add_argument("--mlx-q4", help="MLX 4-bit (group 64) checkpoint of the same weights, for the 4-bit rounds")
    p.add_argument("--json", help="write every figure to this file")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    p.add_argument("--gguf", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:
        set_threads(args.threads)
        print(json.dumps(WORKERS[args.worker](args)))
        return

    with open(args.go_model) as f:
        go = json.load(f)
    with open(args.go_probes) as f:
        probes = json.load(f)["probes"]
    print(f"bench-compare on {cpu_model()}, {os.cpu_count()} CPUs, {args.threads} threads for every engine", file=sys.stderr)
    rounds = paired_rounds(args)
    lrounds, llamas = [], {}
    if args.gguf_dir:
        lrounds = llama_rounds(args)
        for kind in GGUF_KINDS:
            if os.path.exists(gguf_path(args, kind)):
                llamas[kind] = run_worker(args, "llama", ["--gguf", gguf_path(args, kind)])
    qrounds, mlx_q4 = [], None
    if args.mlx_q4 and args.gguf_dir and os.path.exists(gguf_path(args, "q4_0")):
        qrounds = q4_rounds(args)
        mlx_q4 = mlx_q4_once(args)
    engines = [run_worker(args, "hf", ["--dtype", "float32"]), run_worker(args, "hf", ["--dtype", "bfloat16"]),
               run_worker(args, "mlx")]
    names = ["transformers f32", "transformers bf16", "mlx-lm (CPU)"]

    def med(xs):
        xs = [x for x in xs if x is not None]
        return statistics.median(xs) if xs else None

    def get(d, *path):
        for k in path:
            if not isinstance(d, dict) or k not in d:
                return None
            d = d[k]
        return d

    go_mm = [get(r, "go_matmul", "probes", "matmul_gflop_s") for r in rounds]
    torch_mm = [get(r, "torch_matmul", "matmul_gflop_s") for r in rounds]
    go_ttft = [get(r, "go_prefill", "result", "ttft_s") for r in rounds]
    hf_ttft = [get(r, "hf_f32", "ttft_s") for r in rounds]
    hf_fwd = [get(r, "hf_f32", "forward_all_logits_s") for r in rounds]
    go_fwd = [get(r, "go_prefill", "result", "forward_all_logits_s") for r in rounds]
    pair = lambda xs, ys: med([x / y for x, y in zip(xs, ys) if x and y])
    mm_ratio = pair(go_mm, torch_mm)            # Go / PyTorch
    ttft_ratio = pair(hf_ttft, go_ttft)         # > 1: Go is faster
    fwd_ratio = pair(hf_fwd, go_fwd)

    out = []
    w = out.append
    r = go["result"]
    w(f"bench-compare: {os.path.basename(os.path.normpath(args.model))}, prompt {r['prompt_len']} tokens, "
      f"{r['gen_len']} generated, {args.threads} threads; medians of {args.repeats} runs after {args.warmup} warm-up")
    w(f"machine: {cpu_model()}, {os.cpu_count()} CPUs ({platform.system()} {platform.machine()}); "
      f"Go kernels: {go['machine']['kernels']}")
    w("")
    w(f"{'Machine ceilings':<36}{'Go':<20}{'PyTorch':<20}PyTorch / Go")
    w(f"  {'streaming read (%d MiB)' % (probes['stream_bytes'] >> 20):<34}{fmt(probes['stream_gb_s'], ' GB/s', 1):<20}—")
    w(f"  {'f32 matmul 1024³ (paired rounds)':<34}{fmt(med(go_mm), ' GFLOP/s', 1):<20}"
      f"{fmt(med(torch_mm), ' GFLOP/s', 1):<20}{fmt(1 / mm_ratio if mm_ratio else None, '×')}")
    for mv in probes["matvec"]:
        label = f"{mv['dtype']} matvec {mv['rows']}×{mv['cols']}"
        w(f"  {label:<34}{fmt(mv['gb_s'], ' GB/s', 1):<20}({100 * mv['of_stream']:.0f}% of the streaming read measured beside it)")
    w("")
    cols = ["Go (Week 1 ref)"] + names
    w(f"{'Qwen2 generation':<30}" + "".join(f"{c:>19}" for c in cols))
    go_vals = {
        "prefill_tok_s": r["prefill_tok_s"], "ttft_s": r["ttft_s"], "forward_all_logits_s": med(go_fwd),
        "decode_tok_s": r["decode_tok_s"] or None, "peak_rss_bytes": go.get("peak_rss_bytes"),
    }
    rows = [("prefill tok/s (prompt/TTFT)", "prefill_tok_s", 1, 1), ("time to first token (s)", "ttft_s", 1, 3),
            ("prompt forward, all logits (s)", "forward_all_logits_s", 1, 3),
            ("decode tok/s", "decode_tok_s", 1, 2), ("peak RSS (GB)", "peak_rss_bytes", 1e-9, 2)]
    for label, key, scale, digits in rows:
        cells = [fmt(go_vals[key] * scale if go_vals[key] is not None else None, "", digits)]
        for e in engines:
            v = e.get(key)
            cells.append("error" if "error" in e else (f"{fmt(v * scale, '', digits)} ({ratio(v, go_vals[key])})" if v is not None else "—"))
        w(f"  {label:<28}" + "".join(f"{c:>19}" for c in cells))
    w("  (ratios are engine / Go; the time to first token computes only the last position's logits, the")
    w("   prompt forward every position's (Go: the paired rounds' median); the Week 1 model has no KV")
    w("   cache, so its decode re-runs the whole sequence every step)")
    for n, e in zip(names, engines):
        if "error" in e:
            w(f"  {n}: failed: {e['error']}")
    w("")
    w("Paired rounds (Go and the other engine one right after the other, alternating which goes first)")
    w(f"  {'round':<8}{'Go matmul':>14}{'torch matmul':>14}{'Go TTFT':>10}{'HF f32 TTFT':>13}{'Go fwd':>10}{'HF f32 fwd':>12}")
    for i in range(len(rounds)):
        w(f"  {i + 1:<8}{fmt(go_mm[i], '', 1):>14}{fmt(torch_mm[i], '', 1):>14}{fmt(go_ttft[i], ' s', 3):>10}"
          f"{fmt(hf_ttft[i], ' s', 3):>13}{fmt(go_fwd[i], ' s', 3):>10}{fmt(hf_fwd[i], ' s', 3):>12}")
    for i, rd in enumerate(rounds):
        for k, v in rd.items():
            if isinstance(v, dict) and "error" in v:
                w(f"  round {i + 1} {k} failed: {v['error']}")
    w2_checks = week2_section(args, w, probes, lrounds, llamas, med, get, pair)
    w2_checks += q4_section(args, w, probes, qrounds, mlx_q4, med, get, pair)
    w("")
    w("Targets (medians of the per-round ratios)")
    ck = go.get("checkpoint_bytes") or 0
    rss = go.get("peak_rss_bytes") or 0
    checks = []
    if mm_ratio:
        checks.append((f"f32 matmul 1024³ ≥ 60% of PyTorch: {100 * mm_ratio:.0f}%", mm_ratio >= 0.6))
    for mv in probes["matvec"]:
        checks.append((f"{mv['dtype']} matvec {mv['rows']}×{mv['cols']} ≥ 70% of streaming read: {100 * mv['of_stream']:.0f}%",
                       mv["of_stream"] >= 0.7))
    if ttft_ratio:
        checks.append((f"128-token prefill at least as fast as transformers f32 (time to first token): "
                       f"Go is {ttft_ratio:.2f}× as fast", ttft_ratio >= 1))
    if fwd_ratio:
        checks.append((f"  the same work (prompt forward with every position's logits): Go is {fwd_ratio:.2f}× as fast",
                       fwd_ratio >= 1))
    if ck and rss:
        checks.append((f"peak RSS ≤ 1.3× checkpoint: {rss / 1e9:.2f} GB = {rss / ck:.2f}× {ck / 1e9:.2f} GB", rss <= 1.3 * ck))
    checks += w2_checks
    for text, ok in checks:
        w(f"  [{'met' if ok else 'MISSED'}] {text}")
    print("\n".join(out))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"go": go, "go_probes": probes, "rounds": rounds, "engines": dict(zip(names, engines)),
                       "paired": {"matmul_go_over_torch": mm_ratio, "ttft_hf_over_go": ttft_ratio,
                                  "forward_hf_over_go": fwd_ratio},
                       "week2_rounds": lrounds, "llama": llamas, "q4_rounds": qrounds,
                       "cpu": cpu_model(), "threads": args.threads}, f, indent=2)


if __name__ == "__main__":
    main()
