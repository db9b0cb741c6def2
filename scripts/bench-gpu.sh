#!/usr/bin/env bash
# The GPU engine (W2D7) beside Hugging Face transformers, and optionally
# llama.cpp, on random Qwen2 checkpoints of the real 0.5B and 7B shapes, on a
# Linux machine with an NVIDIA GPU. No Go is needed there: `make gpu-check`
# (on any machine with Go) builds bin/gpu/tinyllm beside the test binaries;
# copy bin/gpu/ into a checkout of the same commit on the GPU machine and run,
# from the checkout's root:
#
#   bash scripts/bench-gpu.sh            (or: make bench-gpu, where Go is there too)
#
# It needs python3 with CUDA PyTorch and transformers for the Hugging Face
# rows and the copy bandwidth. In one call it prints, for each shape and
# weight format: decode tok/s at position PROMPT (128), time to first token
# after PROMPT tokens, prefill tok/s of PREFILL (512) tokens, and the
# fraction of the measured copy bandwidth the decode reaches (bytes of the
# weights read per token x tok/s).
#
# Settings (environment): BENCH_GPU_DIR (checkpoints and results; default
# bin/gpu/bench: the 7B bf16 checkpoint is 15 GB), SHAPES ("qwen2-0.5b
# qwen2-7b"), PROMPT (128), GEN (64), PREFILL (512), REPEATS (3),
# HF_MODES ("eager compile"), BENCH_LLAMA (1: also build llama.cpp's
# llama-bench with CUDA from the pinned llama-cpp-python source, about five
# minutes on 16 cores, and run it on GGUF files of the same weights).
# See book/src/appendix-benchmarking.md.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tl=${TINYLLM:-$root/bin/gpu/tinyllm}
dir=${BENCH_GPU_DIR:-$root/bin/gpu/bench}
SHAPES=${SHAPES:-qwen2-0.5b qwen2-7b}
PROMPT=${PROMPT:-128}
GEN=${GEN:-64}
PREFILL=${PREFILL:-512}
REPEATS=${REPEATS:-3}
HF_MODES=${HF_MODES:-eager compile}
mkdir -p "$dir"
[[ -x $tl ]] || { echo "bench-gpu: $tl is missing: run make gpu-check where Go is, and copy bin/gpu/ here"; exit 1; }
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader
echo "host: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"

# The copy bandwidth: PyTorch's device-to-device copy of 1 GiB, bytes read
# plus written, median of 20 after 3 warm-ups (as scripts/gpu-check.sh).
copy_gbps=$(python3 - <<'PY' 2>/dev/null
import statistics, torch
n = 1 << 30
x = torch.full((n // 4,), 0.747, device="cuda"); y = torch.empty_like(x)
for _ in range(3): y.copy_(x)
torch.cuda.synchronize(); ts = []
for _ in range(20):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record(); y.copy_(x); e.record(); e.synchronize(); ts.append(s.elapsed_time(e))
print(f"{2 * n / (statistics.median(ts) / 1e3) / 1e9:.1f}")
PY
)
echo "copy bandwidth (PyTorch, 1 GiB device to device): ${copy_gbps:-not measured} GB/s"

results=$dir/results.jsonl
: >"$results"
note() { echo "$*" >&2; }

for shape in $SHAPES; do
  bf=$dir/$shape q4=$dir/$shape-q4
  if [[ ! -f $bf/config.json ]]; then
    note "writing a random $shape checkpoint (bf16) to $bf"
    "$tl" mkmodel --shape "$shape" --out "$bf" || exit 1
  fi
  if [[ ! -f $q4/config.json ]]; then
    note "quantizing it to MLX 4-bit (group 64) in $q4"
    "$tl" quantize --bits 4 --group-size 64 "$bf" "$q4" || exit 1
  fi
  for m in "$bf" "$q4"; do
    fmt=bf16; [[ $m == "$q4" ]] && fmt=4-bit
    note "tinyllm on $shape $fmt"
    "$tl" bench --device cuda --model "$m" --prompt-len "$PROMPT" --gen-len "$GEN" --repeats "$REPEATS" \
      --json "$dir/go-$shape-$fmt.json" >"$dir/go-$shape-$fmt.log" 2>&1 || { cat "$dir/go-$shape-$fmt.log"; }
    "$tl" bench --device cuda --model "$m" --prompt-len "$PREFILL" --gen-len 1 --prefill-chunk "$PREFILL" --repeats "$REPEATS" \
      --json "$dir/go-$shape-$fmt-prefill.json" >"$dir/go-$shape-$fmt-prefill.log" 2>&1 || { cat "$dir/go-$shape-$fmt-prefill.log"; }
    python3 - "$shape" "$fmt" "$dir/go-$shape-$fmt.json" "$dir/go-$shape-$fmt-prefill.json" >>"$results" <<'PY'
import json, sys
shape, fmt, dec, pre = sys.argv[1:]
row = {"engine": "tinyllm (Go, CUDA graph)", "shape": shape, "weights": fmt}
try:
    d = json.load(open(dec)); row.update(decode_tok_s=d["result"]["decode_tok_s"], ttft_s=d["result"]["ttft_s"], bytes=d["checkpoint_bytes"])
    row["prefill_tok_s"] = json.load(open(pre))["result"]["prefill_tok_s"]
except Exception as e:
    row["error"] = f"no result ({e})"
print(json.dumps(row))
PY
  done
  for mode in $HF_MODES; do
    note "transformers ($mode) on $shape bf16"
    python3 refgen/bench/hf_gpu.py --model "$bf" --mode "$mode" --prompt-len "$PROMPT" --gen-len "$GEN" --prefill "$PREFILL" \
      --repeats "$REPEATS" 2>"$dir/hf-$shape-$mode.err" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read() or "{}"); r["shape"], r["weights"] = sys.argv[1], "bf16"
r.setdefault("engine", "transformers (" + sys.argv[2] + ")")
if not r.get("decode_tok_s") and "error" not in r: r["error"] = "no output (see hf-" + sys.argv[1] + "-" + sys.argv[2] + ".err)"
print(json.dumps(r))' "$shape" "$mode" >>"$results"
  done
  if [[ ${BENCH_LLAMA:-0} == 1 ]]; then
    lb=$dir/llama.cpp/build/bin/llama-bench
    if [[ ! -x $lb ]]; then
      note "building llama-bench with CUDA from the pinned llama-cpp-python source (minutes)"
      ver=$(sed -n 's/^llama-cpp-python==//p' refgen/bench/requirements.txt)
      (cd "$dir" && python3 -m pip download --no-deps --no-binary :all: "llama-cpp-python==$ver" -d sdist >/dev/null &&
        tar xzf sdist/llama_cpp_python-"$ver".tar.gz && rm -rf llama.cpp && mv llama_cpp_python-"$ver"/vendor/llama.cpp llama.cpp &&
        cmake -S llama.cpp -B llama.cpp/build -DGGML_CUDA=ON -DLLAMA_CURL=OFF >/dev/null &&
        cmake --build llama.cpp/build --target llama-bench -j "$(nproc)" >/dev/null) || note "llama.cpp: the build failed"
    fi
    for t in f16 q4_0; do
      g=$dir/$shape-$t.gguf
      [[ -f $g ]] || python3 refgen/bench/to_gguf.py --model "$bf" --type "$t" --out "$g" >&2 || continue
      [[ -x $lb ]] || continue
      "$lb" -m "$g" -p "$PREFILL" -n "$GEN" -fa 1 -ngl 99 -r "$REPEATS" -o json 2>/dev/null | python3 -c '
import json, sys
rows = json.load(sys.stdin); out = {"engine": "llama.cpp (CUDA, flash attention)", "shape": sys.argv[1], "weights": sys.argv[2]}
for r in rows:
    if r.get("n_prompt", 0) > 0: out["prefill_tok_s"] = r["avg_ts"]
    if r.get("n_gen", 0) > 0: out["decode_tok_s"] = r["avg_ts"]
print(json.dumps(out))' "$shape" "$t" >>"$results"
    done
  fi
done

echo
python3 - "$results" "${copy_gbps:-0}" "$PROMPT" "$PREFILL" <<'PY'
import json, sys
path, bw, prompt, prefill = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = [json.loads(l) for l in open(path) if l.strip()]
print(f"| engine | model | weights | decode tok/s (after {prompt}) | TTFT ({prompt} tokens) | prefill {prefill} tok/s | decode, % of copy bandwidth |")
print("|---|---|---|---:|---:|---:|---:|")
for r in rows:
    if "error" in r:
        print(f"| {r['engine']} | {r['shape']} | {r['weights']} | failed: {r['error']} | | | |"); continue
    ttft = f"{1e3 * r['ttft_s']:.1f} ms" if r.get("ttft_s") else ""
    frac = f"{100 * r['bytes'] * r['decode_tok_s'] / (bw * 1e9):.0f}%" if r.get("bytes") and bw else ""
    pre = f"{r['prefill_tok_s']:.0f}" if r.get("prefill_tok_s") else ""
    print(f"| {r['engine']} | {r['shape']} | {r['weights']} | {r.get('decode_tok_s', 0):.0f} | {ttft} | {pre} | {frac} |")
print(f"\ncopy bandwidth {bw:.0f} GB/s; the bandwidth column counts the bytes of the weight files read once per token (KV cache reads left out).")
PY
