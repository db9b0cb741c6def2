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

    python3 scripts/torch-matmul.py --only attention

times, for the W2D6 chapter, PyTorch's own decode attention on that cache:
scaled_dot_product_attention with one query row of 28 heads on 4 key/value
heads of 128 (enable_gqa, no copy of the keys), for each backend that takes
the inputs, on a float32 cache and on a bf16 one, cycling through caches
filling 512 MiB; bandwidth counts the cache's bytes (keys and values) at the
cache's type, as BenchmarkW2D6Decode does.
"""
import argparse
import statistics
import warnings

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


def matmuls(dev):
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


def attention(dev, lengths=(1024, 4096, 32768)):
    """PyTorch's decode attention at Qwen2-7B's heads, by SDPA backend."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F

    warnings.filterwarnings("ignore")  # each backend that refuses the inputs says why at length
    hq, hkv, d = 28, 4, 128
    backends = [("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION),
                ("cudnn", SDPBackend.CUDNN_ATTENTION), ("math", SDPBackend.MATH)]
    for dtype in (torch.float32, torch.bfloat16):
        tname = str(dtype).removeprefix("torch.")
        for s in lengths:
            cache = 2 * hkv * s * d * dtype.itemsize
            copies = max(1, min(64, ROTATE // cache))
            q = torch.randn(1, hq, 1, d, device=dev, dtype=dtype)
            ks = [torch.randn(1, hkv, s, d, device=dev, dtype=dtype) for _ in range(copies)]
            vs = [torch.randn(1, hkv, s, d, device=dev, dtype=dtype) for _ in range(copies)]
            out = torch.empty(1, hq, 1, d, device=dev, dtype=dtype)
            for bname, backend in backends:
                def fn(i):
                    with sdpa_kernel(backend):
                        out.copy_(F.scaled_dot_product_attention(q, ks[i % copies], vs[i % copies], enable_gqa=True))
                try:
                    sec = time_one(fn, copies)
                except RuntimeError as e:  # the backend does not take these inputs
                    print(f"torch attention {tname:8s} S={s:<6d} {bname:9s} not available: {str(e).splitlines()[0][:90]}")
                    continue
                print(f"torch attention {tname:8s} S={s:<6d} {bname:9s} {sec * 1e6:10.2f} us "
                      f"{cache / sec / 1e9:8.0f} GB/s")
            del q, ks, vs, out
            torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("matmul", "attention"), help="time one part (default: both)")
    args = ap.parse_args()
    torch.manual_seed(0)
    dev = torch.device("cuda")
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}")
    if args.only != "attention":
        matmuls(dev)
    if args.only != "matmul":
        attention(dev)


if __name__ == "__main__":
    main()
