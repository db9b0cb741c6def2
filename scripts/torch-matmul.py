"""PyTorch's bf16 y = x @ W.T on the shapes of BenchmarkW2D4Ladder, for the
W2D4 chapter's comparison: device time per product (CUDA events, median of
20 replays of a CUDA graph of 64 products, so that Python's launch cost
stays out), bandwidth counted as the benchmark counts it
(bytes of W in bf16, x and y in float32 as the Go kernels move them, although
torch moves them in bf16) and the arithmetic rate 2·M·N·K / time.

    python3 scripts/torch-matmul.py

One row of x (decode) cycles through copies of W filling 512 MiB, several
times the L2, as the Go benchmark does; 512 rows (prefill) use one copy.
"""
import statistics

import torch

SHAPES = [
    ("0.5B q+o 896x896", 896, 896),
    ("0.5B gate+up 4864x896", 4864, 896),
    ("0.5B down 896x4864", 896, 4864),
    ("0.5B head 151936x896", 151936, 896),
    ("7B q+o 3584x3584", 3584, 3584),
    ("7B gate+up 18944x3584", 18944, 3584),
    ("7B down 3584x18944", 3584, 18944),
]
ROTATE = 512 << 20


def time_one(fn, copies, reps=20, per_graph=64):
    """Median device time of one product: per_graph products captured in a
    CUDA graph (so that Python's launch cost stays out), replayed reps times."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for i in range(3):
            fn(i)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(per_graph):
            fn(i)
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        graph.replay()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) / 1e3 / per_graph)
    return statistics.median(times)


def main():
    torch.manual_seed(0)
    dev = torch.device("cuda")
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}")
    for name, n, k in SHAPES:
        for m in (1, 512):
            copies = max(1, min(64, ROTATE // (2 * n * k))) if m == 1 else 1
            ws = [torch.randn(n, k, device=dev, dtype=torch.bfloat16) * 0.05 for _ in range(copies)]
            x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
            out = torch.empty(m, n, device=dev, dtype=torch.bfloat16)
            fn = lambda i: torch.matmul(x, ws[i % copies].T, out=out)
            sec = time_one(fn, copies)
            nbytes = 2 * n * k + 4 * (m * k + m * n)
            print(f"torch {name:24s} M={m:<4d} {sec * 1e6:10.1f} us {nbytes / sec / 1e9:8.0f} GB/s "
                  f"{2 * m * n * k / sec / 1e12:7.1f} TFLOP/s")
            del ws, x
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
