#!/usr/bin/env bash
# GPU checks of the kernel runtime (kernels/) and the GPU tasks of the course,
# for a Linux machine with an NVIDIA GPU, with or without a Go toolchain.
#
#   scripts/gpu-check.sh build   (needs Go) compile the GPU test binaries into
#                                bin/gpu/ (linux/amd64, no cgo) and print the
#                                command that runs them
#   scripts/gpu-check.sh run     (needs the NVIDIA driver and NVRTC; python3 with
#                                CUDA PyTorch for the bandwidth comparison)
#                                measure PyTorch's copy bandwidth, run every
#                                binary with the GPU required, fail on any
#                                failure or skip, and summarise the numbers
#   scripts/gpu-check.sh run tests   only the checks; run bench: only the
#                                benchmarks, into the same output folder (the
#                                full check is both)
#
# With no argument it builds. `make gpu-check-local` does both on a machine that
# has Go and the GPU. On a GPU machine without Go, build elsewhere and copy
# bin/gpu/ into a checkout of the same commit there: the binaries run from
# their package folders and read the repository's test data.
# Logs and bench.json go to $TINYLLM_GPU_CHECK_OUT (default bin/gpu/out).
# See book/src/maintainers-gpu.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=bin/gpu

# The GPU test binaries: name, package, which tests.
targets=(
  "kernels ./kernels ."
  "devtensor ./kernels/devtensor ."
  "devsample ./kernels/devsample ."
  "solutions-w1d7 ./solutions/week1/day7 W1D7Task2"
  "solutions-w2d4 ./solutions/week2/day4 W2D4"
  "solutions-w2d5 ./solutions/week2/day5 W2D5"
  "solutions-w2d6 ./solutions/week2/day6 W2D6"
  "solutions-w2d7 ./solutions/week2/day7 W2D7"
  "solutions-w3d4 ./solutions/week3/day4 W3D4Task4"
  "gpurunner ./internal/gpurunner ."
)

build() {
  mkdir -p "$bin"
  for t in "${targets[@]}"; do
    read -r name pkg _ <<<"$t"
    echo "building $bin/$name.test from $pkg"
    CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go test -c -o "$bin/$name.test" "$pkg"
  done
  # The program itself, for scripts/bench-gpu.sh and tinyllm chat --device cuda.
  echo "building $bin/tinyllm from ./cmd/tinyllm"
  CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -o "$bin/tinyllm" ./cmd/tinyllm
  cat <<MSG

Built $(ls "$bin"/*.test | wc -l) GPU test binaries in $bin/. On a Linux machine with an NVIDIA
GPU, from the root of a checkout of this commit with $bin/ in it, run:

    bash scripts/gpu-check.sh run
    bash scripts/bench-gpu.sh        (the GPU engine beside transformers; see the benchmarking appendix)

(On a machine with both Go and the GPU, make gpu-check-local builds and runs in one step.)
MSG
}

run() {
  part=${1:-all}
  if [[ $part != all && $part != tests && $part != bench ]]; then
    echo "usage: $0 run [tests|bench]" >&2; return 2
  fi
  out=${TINYLLM_GPU_CHECK_OUT:-$bin/out}
  mkdir -p "$out"
  export TINYLLM_REQUIRE_GPU=1 TINYLLM_BENCH_OUT="$out/bench.json"
  [[ $part == bench ]] || rm -f "$TINYLLM_BENCH_OUT"  # the kernels' checks write it
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

  # PyTorch's device-to-device copy of the same size the Go benchmark uses
  # (1 GiB each way), timed with CUDA events, median of 20 after 3 warm-ups,
  # counting bytes read plus bytes written.
  torch_gbps=$(python3 - <<'PY' 2>"$out/torch.err" || true
import statistics, torch
nbytes = 1 << 30
x = torch.full((nbytes // 4,), 0.747, device="cuda")
y = torch.empty_like(x)
for _ in range(3):
    y.copy_(x)
torch.cuda.synchronize()
ts = []
for _ in range(20):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record(); y.copy_(x); e.record(); e.synchronize()
    ts.append(s.elapsed_time(e))
print(f"{2 * nbytes / (statistics.median(ts) / 1e3) / 1e9:.1f}")
PY
)
  if [[ -n "$torch_gbps" ]]; then
    echo "PyTorch $(python3 -c 'import torch; print(torch.__version__)') copy bandwidth: $torch_gbps GB/s"
    export TINYLLM_TORCH_COPY_GBPS=$torch_gbps
  else
    echo "PyTorch copy bandwidth: not measured (no python3 with CUDA PyTorch: $(tail -1 "$out/torch.err"))"
  fi

  # W2D7's fidelity check needs a random Qwen2-0.5B-shaped checkpoint and
  # Hugging Face's float32 and bf16 log-probs on it (1 GB, made once per
  # output folder); without PyTorch the check fails by name.
  if [[ $part != bench && -z ${TINYLLM_W2D7_FIDELITY_DIR:-} ]]; then
    fid="$out/w2d7-fidelity"
    if [[ ! -f $fid/logprobs_bf16.npy ]]; then
      echo "=== W2D7 fidelity checkpoint (refgen/fidelity/qwen2_gpu_fidelity.py)"
      mkdir -p "$fid"
      python3 refgen/fidelity/qwen2_gpu_fidelity.py --out "$fid" 2>&1 | tail -3 || true
    fi
    [[ -f $fid/logprobs_bf16.npy ]] && export TINYLLM_W2D7_FIDELITY_DIR=$(cd "$fid" && pwd)
  fi

  status=0
  for t in "${targets[@]}"; do
    [[ $part == bench ]] && break
    read -r name pkg run <<<"$t"
    exe=$root/$bin/$name.test
    if [[ ! -x $exe ]]; then
      echo "FAIL $exe is missing: run scripts/gpu-check.sh build first (or copy $bin/ here from where it was built)"; status=1; continue
    fi
    echo "=== $name ($pkg)"
    set +e
    # W2D6's checks compile several hundred builds of its kernels with
    # NVRTC, and on an H200's host they outgrew a 5-minute limit (the
    # compile check alone took 3 minutes before it compiled in parallel):
    # this limit leaves room for a slower host, and still ends a hang.
    (cd "$pkg" && "$exe" -test.v -test.count=1 -test.run "$run" -test.timeout 900s) 2>&1 | tee "$out/$name.log"
    rc=${PIPESTATUS[0]}
    set -e
    if [[ $rc -ne 0 ]]; then
      echo "FAIL $name (exit $rc)"; status=1
    elif grep -q -- '--- SKIP' "$out/$name.log"; then
      echo "FAIL $name: checks were skipped although the GPU is required:"; grep -- '--- SKIP' "$out/$name.log"; status=1
    fi
  done

  # The W2D4 matmul ladder's benchmark (device time, GB/s, TFLOP/s of every
  # rung on the Qwen2 shapes; the decode rung from a graph also beside a
  # copy of as many bytes, launched the same way) and PyTorch's bf16 matmul
  # on the same shapes.
  if [[ $part != tests && -x $root/$bin/solutions-w2d4.test ]]; then
    echo "=== W2D4 matmul ladder benchmark"
    set +e
    (cd solutions/week2/day4 && "$root/$bin/solutions-w2d4.test" -test.run '^$' -test.bench W2D4Ladder \
      -test.benchtime 100ms -test.timeout 600s) >"$out/w2d4-bench.log" 2>&1 || { echo "FAIL the W2D4 benchmark"; status=1; }
    grep -E '^Benchmark' "$out/w2d4-bench.log" | sed -E 's/^BenchmarkW2D4Ladder\///; s/-[0-9]+ +/ /' |
      awk '{for (i = 2; i <= NF; i++) v[$i] = $(i - 1); printf "%-48s %9s us %7s GB/s %7s TFLOP/s %6s%% of the same-size copy\n", $1, v["us/gpu"], v["GB/s"], v["TFLOP/s"], v["%samecopy"]; delete v}'
    python3 scripts/torch-matmul.py 2>&1 | tee "$out/w2d4-torch.log" || echo "PyTorch matmul: not measured"
    set -e
  fi

  # The W2D5 fused kernels' benchmark (µs and GB/s of each kernel, beside
  # the unfused pairs and a plain copy on the same buffers).
  if [[ $part != tests && -x $root/$bin/solutions-w2d5.test ]]; then
    echo "=== W2D5 fused kernels benchmark"
    set +e
    (cd solutions/week2/day5 && "$root/$bin/solutions-w2d5.test" -test.run '^$' -test.bench W2D5GPU \
      -test.benchtime 500x -test.timeout 600s) >"$out/w2d5-bench.log" 2>&1 || { echo "FAIL the W2D5 benchmark"; status=1; }
    grep -E '^Benchmark' "$out/w2d5-bench.log" | sed -E 's/^BenchmarkW2D5GPU\///; s/-[0-9]+ +/ /' |
      awk '{for (i = 2; i <= NF; i++) v[$i] = $(i - 1); printf "%-36s %9s us %8s GB/s %7s us/host\n", $1, v["us/gpu"], v["GB/s"], v["us/host"]}'
    set -e
  fi

  # The W2D6 decode attention benchmark (µs per launch, GB/s of the cache
  # read and % of the copy bandwidth above, each path eager and in a graph).
  if [[ $part != tests && -x $root/$bin/solutions-w2d6.test ]]; then
    echo "=== W2D6 decode attention benchmark"
    set +e
    (cd solutions/week2/day6 && "$root/$bin/solutions-w2d6.test" -test.run '^$' -test.bench 'W2D6Decode$' \
      -test.benchtime 100x -test.timeout 600s) >"$out/w2d6-bench.log" 2>&1 || { echo "FAIL the W2D6 benchmark"; status=1; }
    grep -E '^Benchmark' "$out/w2d6-bench.log" | sed -E 's/^BenchmarkW2D6Decode\///; s/-[0-9]+ +/ /' |
      awk '{for (i = 2; i <= NF; i++) v[$i] = $(i - 1); printf "%-40s %9s us %8s GB/s %6s%% of copy %6s%% of the same-size copy\n", $1, v["us/gpu"], v["GB/s"], v["%copy"], v["%samecopy"]; delete v}'
    # PyTorch's own decode attention on the same heads and lengths, by backend.
    python3 scripts/torch-matmul.py --only attention 2>&1 | tee "$out/w2d6-torch.log" || echo "PyTorch attention: not measured"
    set -e
  fi

  # The W3D4 paged attention kernel's benchmark (µs per launch and GB/s of
  # the keys and values read, decode steps and a prefill chunk).
  if [[ $part != tests && -x $root/$bin/solutions-w3d4.test ]]; then
    echo "=== W3D4 paged attention benchmark"
    set +e
    (cd solutions/week3/day4 && "$root/$bin/solutions-w3d4.test" -test.run '^$' -test.bench W3D4PagedGPU \
      -test.benchtime 200x -test.timeout 600s) >"$out/w3d4-bench.log" 2>&1 || { echo "FAIL the W3D4 benchmark"; status=1; }
    # Each value stands before its unit.
    grep -E '^Benchmark' "$out/w3d4-bench.log" | sed -E 's/^BenchmarkW3D4PagedGPU\///; s/-[0-9]+ +/ /' |
      awk '{for (i = 2; i <= NF; i++) v[$i] = $(i - 1); printf "%-48s %9s us %8s GB/s\n", $1, v["us/gpu"], v["GB/s"]}'
    set -e
  fi

  echo
  echo "Summary"
  grep -h -E -- '^(--- |ok|FAIL|PASS)' "$out"/*.log | grep -v -- '--- PASS: .*/' || true
  for f in "$out"/*.log; do
    grep -h -E 'copy of|empty launch|PyTorch on the same' "$f" | sed 's/^ *//' || true
  done
  [[ -f $TINYLLM_BENCH_OUT ]] && cat "$TINYLLM_BENCH_OUT"
  if [[ $status -eq 0 ]]; then echo "gpu-check: PASS"; else echo "gpu-check: FAIL"; fi
  return $status
}

case "${1:-build}" in
  build) build ;;
  run) run "${2:-all}" ;;
  *) echo "usage: $0 [build|run [tests|bench]]" >&2; exit 2 ;;
esac
