"""PyTorch's bf16 y = x @ W.T on the shapes of BenchmarkW2D4Ladder, for the
W2D4 chapter's comparison: device time per product (CUDA events, median of
20 replays of a CUDA graph of 64 products, so that Python's launch cost
stays out), bandwidth counted as the benchmark counts it
(bytes of W in bf16, x and y in float32 as the Go kernels move them, although
torch moves them in bf16) and the arithmetic rate 2·M·N·K / time.

    python3 scripts/torch-matmul.py

One row of x (decode) cycles through copies of W filling 512 MiB, several
times the L2, as the Go benchmark does; 512 rows (prefill) use one copy.

Beside each decode product it times a copy that moves as many bytes (half
read, half written), from the same kind of graph, cycling through 512 MiB
of buffers: no kernel reads that many bytes faster, so it is the ceiling at
that size, as the copy of 1 GiB is for large ones. The last copy moves the
bytes of W2D6's decode cache at Qwen2-7B's heads and 4k positions (float32).
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


def time_copy(nbytes):
    """Median device time of a copy moving nbytes (read plus written)."""
    half = (nbytes // 2 + 15) // 16 * 16
    pairs = max(1, min(64, ROTATE // (2 * half)))
    src = [torch.full((half // 4,), 0.185, device="cuda") for _ in range(pairs)]
    dst = [torch.empty_like(s) for s in src]
    sec = time_one(lambda i: dst[i % pairs].copy_(src[i % pairs]), pairs)
    del src, dst
    torch.cuda.empty_cache()
    return sec


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
            if m == 1:
                csec = time_copy(nbytes)
                print(f"torch copy of the same bytes {name:24s} {csec * 1e6:10.2f} us {nbytes / csec / 1e9:8.0f} GB/s "
                      f"(the product: {100 * csec / sec:.0f}% of it)")
            print(f"torch {name:24s} M={m:<4d} {sec * 1e6:10.1f} us {nbytes / sec / 1e9:8.0f} GB/s "
                  f"{2 * m * n * k / sec / 1e12:7.1f} TFLOP/s")
            del ws, x
            torch.cuda.empty_cache()
    cache = 2 * 4 * 4096 * 128 * 4
    csec = time_copy(cache)
    print(f"torch copy of the same bytes {'7B decode cache, 4k':24s} {csec * 1e6:10.2f} us {cache / csec / 1e9:8.0f} GB/s")


if __name__ == "__main__":
    main()
