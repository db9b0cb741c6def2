"""W2D6 fixtures: attention as flash attention must reproduce it.

Every case is PyTorch's scaled_dot_product_attention with enable_gqa=True,
computed in float64 from float32 inputs and stored as float32. Causal cases
use torch's own bottom-right aligned causal bias (causal_lower_right), the
alignment a KV cache needs when L new queries follow S - L cached keys; they
store no mask, only causal=true. Explicit masks are additive and stored; some
hold -inf (padding), and one pairs an explicit mask with causality, which the
reference applies as their sum. Lengths are odd on purpose: no case is a
multiple of a tile.
"""

import numpy as np
import torch
from torch.nn.attention.bias import causal_lower_right

from common import f32, t64  # noqa: E402

DAY = "w2d6"
SEED = 2601


def sdpa(w, seed):
    cases = [
        # name, B, H_q, H, L, S, D, causal, mask kind, scale
        ("prefill_causal_gqa7", 1, 14, 2, 37, 37, 64, True, None, 0.0),
        ("kv_causal_l5_s67", 2, 8, 2, 5, 67, 32, True, None, 0.0),
        ("decode_s301_d128", 1, 7, 1, 1, 301, 128, False, None, 0.0),
        ("decode_causal_s641_gqa4", 1, 8, 2, 1, 641, 128, True, None, 0.0),
        ("random_mask_gqa2", 2, 6, 3, 9, 23, 16, False, "random", 0.0),
        ("padding_mask", 1, 4, 2, 13, 29, 8, False, "padding", 0.0),
        ("causal_and_mask", 1, 6, 2, 19, 45, 64, True, "random", 0.0),
        ("odd_lengths_d24", 2, 3, 1, 33, 65, 24, True, None, 0.0),
        ("mha_equal_heads", 1, 4, 4, 17, 17, 32, True, None, 0.0),
        ("explicit_scale", 1, 4, 2, 7, 11, 16, False, None, 0.3),
        ("long_causal_l130_s200", 1, 4, 2, 130, 200, 64, True, None, 0.0),
        ("qwen7b_heads_causal_l40", 1, 28, 4, 40, 40, 128, True, None, 0.0),
    ]
    for i, (name, b, hq, h, l, s, d, causal, mask_kind, scale) in enumerate(cases):
        rng = np.random.default_rng(seed + i)
        q = f32(rng, b, hq, l, d)
        k = f32(rng, b, h, s, d)
        v = f32(rng, b, h, s, d)
        arrays = {"q": q, "k": k, "v": v}
        mask = None
        if mask_kind == "random":
            mask = f32(rng, l, s)
        elif mask_kind == "padding":
            # Keys hidden at random (never a whole row) plus small biases.
            mask = f32(rng, l, s, scale=0.5)
            hidden = rng.random((l, s)) < 0.3
            hidden[:, 0] = False
            mask[hidden] = -np.inf
        if mask is not None:
            arrays["mask"] = mask
        bias = None if mask is None else t64(mask)
        if causal:
            lower_right = causal_lower_right(l, s)._materialize(device=torch.device("cpu"))
            cbias = torch.zeros(l, s, dtype=torch.float64).masked_fill(~lower_right, float("-inf"))
            bias = cbias if bias is None else bias + cbias
        out = torch.nn.functional.scaled_dot_product_attention(
            t64(q), t64(k), t64(v), attn_mask=bias, scale=None if scale == 0 else scale, enable_gqa=True
        )
        arrays["out"] = out.numpy()
        w.case(DAY, "sdpa", name, seed + i, arrays, scale=scale, causal=causal)


def generate(w):
    torch.manual_seed(SEED)
    sdpa(w, SEED)
    return {DAY: SEED}
