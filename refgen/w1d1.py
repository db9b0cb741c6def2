"""W1D1 fixtures: softmax, linear, scaled dot-product attention, multi-head attention.

Inputs are drawn as float32 with NumPy; references are computed by PyTorch in
float64 from those exact float32 values and stored as float32, so the stored
answer is the correctly rounded result and the Go code is graded on its own error.
"""

import numpy as np
import torch

from common import causal_mask, f32, t64  # noqa: E402

DAY = "w1d1"
SEED = 1001








def softmax(w, seed):
    cases = [
        # name, shape, axis, scale
        ("no_batch", (7,), 0, 1.0),
        ("batch2", (3, 8), -1, 1.0),
        ("batch3", (2, 3, 8), -1, 1.0),
        ("middle_axis", (2, 5, 4), 1, 1.0),
        ("first_axis_4d", (3, 2, 4, 5), 0, 1.0),
        # exp(x) overflows float32 above ~88.7: a softmax that forgets to subtract
        # the maximum returns inf/inf = NaN here.
        ("large_values", (2, 3, 8), -1, 100.0),
        ("large_negative", (4, 6), -1, -300.0),
    ]
    for i, (name, shape, axis, scale) in enumerate(cases):
        rng = np.random.default_rng(seed + i)
        x = f32(rng, *shape)
        if name == "large_negative":
            x = np.abs(x) * scale
        else:
            x = x * scale
        out = torch.softmax(t64(x), dim=axis).numpy()
        w.case(DAY, "softmax", name, seed + i, {"x": x, "out": out}, axis=axis)


def linear(w, seed):
    cases = [
        # name, x shape, out features, bias
        ("no_batch", (6,), 4, True),
        ("batch2_no_bias", (3, 6), 5, False),
        ("batch2", (5, 16), 8, True),
        ("batch3", (2, 3, 16), 8, True),
        ("batch4", (2, 2, 3, 32), 12, False),
    ]
    for i, (name, xs, out_f, bias) in enumerate(cases):
        rng = np.random.default_rng(seed + i)
        x = f32(rng, *xs)
        wt = f32(rng, out_f, xs[-1], scale=xs[-1] ** -0.5)
        arrays = {"x": x, "w": wt}
        b = None
        if bias:
            b = f32(rng, out_f)
            arrays["b"] = b
        out = torch.nn.functional.linear(t64(x), t64(wt), None if b is None else t64(b))
        arrays["out"] = out.numpy()
        w.case(DAY, "linear", name, seed + i, arrays, bias=bias)


def sdpa(w, seed):
    cases = [
        # name, batch dims, L, S, D, scale (0 = default), mask kind
        ("no_batch", (), 4, 6, 8, 0.0, None),
        ("batch2", (3,), 4, 6, 8, 0.0, None),
        ("batch3", (2, 3), 5, 5, 16, 0.0, None),
        ("batch2_mask", (3,), 4, 6, 8, 0.0, "random"),
        ("batch3_causal", (2, 3), 5, 7, 8, 0.0, "causal"),
        ("batch3_full_mask", (2, 3), 3, 4, 8, 0.0, "full"),
        ("explicit_scale", (2,), 3, 5, 8, 0.3, "random"),
        # A single key gets weight 1 whatever the scale, so a missing or wrong
        # scale passes here while a softmax over the queries does not: this
        # case tells those two look-alike mistakes apart.
        ("one_key", (2,), 4, 1, 8, 0.0, None),
    ]
    for i, (name, bd, l, s, d, scale, mask_kind) in enumerate(cases):
        rng = np.random.default_rng(seed + i)
        q = f32(rng, *bd, l, d)
        k = f32(rng, *bd, s, d)
        v = f32(rng, *bd, s, d)
        arrays = {"q": q, "k": k, "v": v}
        mask = None
        if mask_kind == "random":
            mask = f32(rng, l, s)
        elif mask_kind == "causal":
            mask = causal_mask(l, s)
        elif mask_kind == "full":
            mask = f32(rng, *bd, l, s)
        if mask is not None:
            arrays["mask"] = mask
        out = torch.nn.functional.scaled_dot_product_attention(
            t64(q),
            t64(k),
            t64(v),
            attn_mask=None if mask is None else t64(mask),
            scale=None if scale == 0.0 else scale,
        )
        arrays["out"] = out.numpy()
        w.case(DAY, "sdpa", name, seed + i, arrays, scale=scale)


def mha(w, seed):
    cases = [
        # name, N, L, S, E, heads, mask kind
        ("self_unmasked", 2, 5, 5, 16, 4, None),
        ("self_causal", 2, 6, 6, 16, 2, "causal"),
        ("cross_masked", 3, 4, 7, 24, 3, "random"),
        ("one_head", 1, 3, 3, 8, 1, None),
    ]
    for i, (name, n, l, s, e, h, mask_kind) in enumerate(cases):
        rng = np.random.default_rng(seed + i)
        query = f32(rng, n, l, e)
        if l == s:
            key = value = query  # self-attention
        else:
            key = f32(rng, n, s, e)
            value = f32(rng, n, s, e)
        wq, wk, wv, wo = (f32(rng, e, e, scale=e**-0.5) for _ in range(4))
        mask = None
        if mask_kind == "causal":
            mask = causal_mask(l, s)
        elif mask_kind == "random":
            mask = f32(rng, l, s)
        layer = torch.nn.MultiheadAttention(e, h, bias=False, batch_first=True, dtype=torch.float64)
        with torch.no_grad():
            layer.in_proj_weight.copy_(torch.cat([t64(wq), t64(wk), t64(wv)], dim=0))
            layer.out_proj.weight.copy_(t64(wo))
            out, _ = layer(t64(query), t64(key), t64(value), attn_mask=None if mask is None else t64(mask), need_weights=False)
        arrays = {"query": query, "key": key, "value": value, "wq": wq, "wk": wk, "wv": wv, "wo": wo, "out": out.numpy()}
        if mask is not None:
            arrays["mask"] = mask
        w.case(DAY, "mha", name, seed + i, arrays, heads=h)


def generate(w):
    torch.manual_seed(SEED)
    softmax(w, SEED)
    linear(w, SEED + 100)
    sdpa(w, SEED + 200)
    mha(w, SEED + 300)
    return {DAY: SEED}
