#!/usr/bin/env bash
# GPU checks of the kernel runtime (kernels/) and the GPU tasks of the course,
# for a Linux machine with an NVIDIA GPU that may have no Go toolchain.
#
#   scripts/gpu-check.sh build   here (needs Go): compile the GPU test binaries
#                                into bin/gpu/ (linux/amd64, no cgo), then print
#                                the command to run on the GPU machine
#   scripts/gpu-check.sh run     there (needs the NVIDIA driver, NVRTC, and for
#                                the bandwidth comparison python3 with PyTorch):
#                                measure PyTorch's copy bandwidth, run every
#                                binary with the GPU required, fail on any
#                                failure or skip, and summarise the numbers
#
# With no argument it builds. The binaries run from their package folders, so
# the repository's tracked files must be there too (as they are on the GPU
# machine of this workplace, which receives the working tree).
# See book/src/maintainers-gpu.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=bin/gpu

# The GPU test binaries: name, package, which tests.
targets=(
  "kernels ./kernels ."
  "solutions-w1d7 ./solutions/week1/day7 W1D7Task2"
)

build() {
  mkdir -p "$bin"
  for t in "${targets[@]}"; do
    read -r name pkg _ <<<"$t"
    echo "building $bin/$name.test from $pkg"
    CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go test -c -o "$bin/$name.test" "$pkg"
  done
  cat <<MSG

Built $(ls "$bin"/*.test | wc -l) GPU test binaries in $bin/. On the GPU machine, from the
repository root (with bin/ copied there), run:

    bash scripts/gpu-check.sh run

(An agent in this workplace: the device tool's run, with carry ["bin/gpu"] and that
command. Anywhere else: copy the repository and bin/gpu/ to the GPU machine.)
MSG
}

run() {
  out=${OUT:-$bin/out}
  mkdir -p "$out"
  export TINYLLM_REQUIRE_GPU=1 TINYLLM_BENCH_OUT="$out/bench.json"
  rm -f "$TINYLLM_BENCH_OUT"
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

  status=0
  for t in "${targets[@]}"; do
    read -r name pkg run <<<"$t"
    exe=$root/$bin/$name.test
    if [[ ! -x $exe ]]; then
      echo "FAIL $exe is missing: run scripts/gpu-check.sh build first and carry bin/"; status=1; continue
    fi
    echo "=== $name ($pkg)"
    set +e
    (cd "$pkg" && "$exe" -test.v -test.count=1 -test.run "$run" -test.timeout 300s) 2>&1 | tee "$out/$name.log"
    rc=${PIPESTATUS[0]}
    set -e
    if [[ $rc -ne 0 ]]; then
      echo "FAIL $name (exit $rc)"; status=1
    elif grep -q -- '--- SKIP' "$out/$name.log"; then
      echo "FAIL $name: checks were skipped on the GPU machine:"; grep -- '--- SKIP' "$out/$name.log"; status=1
    fi
  done

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
  run) run ;;
  *) echo "usage: $0 [build|run]" >&2; exit 2 ;;
esac
