"""Maintainer check: does mlx-lm load a folder written by `tinyllm quantize`, and
compute what it computes on its own quantization of the same model?

    go run ./cmd/tinyllm quantize --bits 4 --group-size 64 models/tinyqwen-chat /tmp/q4
    .venv-refgen/bin/python refgen/check_quantized.py --original models/tinyqwen-chat --quantized /tmp/q4

It quantizes --original with mlx_lm.convert into a temporary folder (same bits
and group size, read from --quantized's config.json), compares the two folders'
tensors (names, dtypes, every value) and config.json, then loads both with
mlx_lm.load and compares their logits on random token sequences (they must be
identical when the tensors are), and reports how far the quantized logits are
from the unquantized model's. It exits 1 on any difference.
"""

import argparse
import json
import os
import sys
import tempfile

import mlx.core as mx
import numpy as np
from mlx.utils import tree_map


def logits(folder, tokens):
    import mlx_lm

    model, _ = mlx_lm.load(folder)
    model.update(tree_map(lambda p: p.astype(mx.float32) if p.dtype in (mx.bfloat16, mx.float16) else p,
                          model.parameters()))
    return np.array(model(mx.array(tokens)).astype(mx.float32))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--original", required=True, help="the bf16/f16/f32 model folder that was quantized")
    ap.add_argument("--quantized", required=True, help="the folder `tinyllm quantize` wrote")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from mlx_lm.convert import convert

    with open(os.path.join(args.quantized, "config.json")) as f:
        cfg = json.load(f)
    q = cfg["quantization"]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        ref = os.path.join(tmp, "mlx")
        convert(args.original, mlx_path=ref, quantize=True, q_group_size=q["group_size"], q_bits=q["bits"])
        got, want = {}, {}
        for name in sorted(os.listdir(args.quantized)):
            if name.endswith(".safetensors"):
                got.update(mx.load(os.path.join(args.quantized, name)))
        for name in sorted(os.listdir(ref)):
            if name.endswith(".safetensors"):
                want.update(mx.load(os.path.join(ref, name)))
        if set(got) != set(want):
            failures.append(f"tensor names differ: only in tinyllm's {sorted(set(got) - set(want))}, "
                            f"only in mlx-lm's {sorted(set(want) - set(got))}")
        for k in sorted(set(got) & set(want)):
            a, b = got[k], want[k]
            if a.dtype != b.dtype or a.shape != b.shape or not mx.array_equal(a, b).item():
                failures.append(f"{k}: tinyllm {a.dtype} {a.shape}, mlx-lm {b.dtype} {b.shape}, equal values: "
                                f"{a.shape == b.shape and mx.array_equal(a, b).item()}")
        with open(os.path.join(ref, "config.json")) as f:
            ref_cfg = json.load(f)
        for k in sorted(set(cfg) | set(ref_cfg)):
            if cfg.get(k) != ref_cfg.get(k):
                failures.append(f"config.json {k!r}: tinyllm {cfg.get(k)!r}, mlx-lm {ref_cfg.get(k)!r}")

        rng = np.random.default_rng(args.seed)
        tokens = rng.integers(0, cfg["vocab_size"], size=(2, 16))
        lq, lref = logits(args.quantized, tokens), logits(ref, tokens)
        lorig = logits(args.original, tokens)
    d = float(np.abs(lq - lref).max())
    print(f"{len(got)} tensors compared; mlx_lm.load opened {args.quantized}")
    print(f"logits, tinyllm's folder vs mlx-lm's own quantization: max |difference| {d:.3g}")
    print(f"logits, quantized vs the original model: max |difference| {float(np.abs(lq - lorig).max()):.3g}, "
          f"same argmax at {100 * float((lq.argmax(-1) == lorig.argmax(-1)).mean()):.0f}% of positions")
    if d != 0:
        failures.append(f"the logits differ by up to {d:.3g}")
    for f in failures:
        print("DIFFERENCE:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
