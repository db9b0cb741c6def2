"""W1D3 fixtures: grouped-query attention, the causal mask, Qwen2's attention layer.

Grouped attention comes from PyTorch's scaled_dot_product_attention with
enable_gqa=True; the layer from Hugging Face `Qwen2Attention` (eager attention)
on small random configurations. Everything is computed in float64 from float32
inputs and stored as float32.
"""

import numpy as np
import torch
from transformers import Qwen2Config
from transformers.models.qwen2.modeling_qwen2 import Qwen2Attention

from common import causal_mask, f32, t64  # noqa: E402

DAY = "w1d3"
SEED = 1301








def grouped(w, seed):
    cases = [
        # name, batch dims, H_q, H, L, S, D, mask kind
        ("no_batch", (), 4, 2, 3, 5, 8, None),
        ("batch1", (2,), 6, 2, 4, 4, 8, None),
        ("batch2", (2, 2), 4, 2, 3, 6, 8, None),
        ("batch1_causal", (2,), 6, 3, 4, 7, 8, "causal"),
        ("batch1_random_mask", (3,), 4, 1, 3, 5, 16, "random"),
        ("equal_heads", (2,), 2, 2, 5, 5, 8, "causal"),
        ("explicit_scale", (1,), 8, 2, 2, 3, 4, "scale"),
    ]
    for i, (name, bd, hq, h, l, s, d, mask_kind) in enumerate(cases):
        rng = np.random.default_rng(seed + i)
        q = f32(rng, *bd, hq, l, d)
        k = f32(rng, *bd, h, s, d)
        v = f32(rng, *bd, h, s, d)
        arrays = {"q": q, "k": k, "v": v}
        mask = None
        if mask_kind == "causal":
            mask = causal_mask(l, s)
        elif mask_kind == "random":
            mask = f32(rng, l, s)
        if mask is not None:
            arrays["mask"] = mask
        scale = 0.25 if mask_kind == "scale" else 0.0
        # PyTorch's GQA wants at least a batch axis in front of the heads.
        qt, kt, vt = (t64(a) for a in (q, k, v))
        if not bd:
            qt, kt, vt = qt[None], kt[None], vt[None]
        out = torch.nn.functional.scaled_dot_product_attention(
            qt, kt, vt, attn_mask=None if mask is None else t64(mask), scale=None if scale == 0 else scale, enable_gqa=True
        )
        if not bd:
            out = out[0]
        arrays["out"] = out.numpy()
        w.case(DAY, "grouped", name, seed + i, arrays, scale=scale)


def causal_masks(w, seed):
    for i, (l, s) in enumerate([(3, 3), (3, 5), (1, 4), (4, 6), (5, 5)]):
        w.case(DAY, "causal_mask", f"L{l}_S{s}", seed + i, {"out": causal_mask(l, s)}, L=l, S=s)


def _rope_cos_sin(positions, head_dim, theta):
    """cos/sin as Qwen2 builds them (half-split layout), in float64."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    freqs = positions[..., None].to(torch.float64) * inv_freq
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def qwen2_attention(w, seed):
    cases = [
        # name, N, L, hidden, heads, kv heads, theta, causal
        ("causal", 2, 6, 32, 4, 2, 10000.0, True),
        ("no_mask", 2, 6, 32, 4, 2, 10000.0, False),
        ("group3_theta1e6", 1, 9, 48, 6, 2, 1000000.0, True),
        ("one_token", 3, 1, 32, 4, 2, 10000.0, True),
        # With a head dimension of 2 there is one pair, the same in both RoPE
        # layouts: the traditional layout passes here, RoPE applied after the
        # transpose does not. This case tells those two mistakes apart.
        ("head_dim2", 2, 5, 8, 4, 2, 10000.0, True),
    ]
    for i, (name, n, l, hidden, heads, kv, theta, is_causal) in enumerate(cases):
        rng = np.random.default_rng(seed + i)
        cfg = Qwen2Config(
            hidden_size=hidden,
            num_attention_heads=heads,
            num_key_value_heads=kv,
            rope_theta=theta,
            max_position_embeddings=64,
            attn_implementation="eager",
        )
        layer = Qwen2Attention(cfg, layer_idx=0).to(torch.float64).eval()
        hd = hidden // heads
        weights = {
            "wq": f32(rng, heads * hd, hidden, scale=hidden**-0.5),
            "bq": f32(rng, heads * hd, scale=0.1),
            "wk": f32(rng, kv * hd, hidden, scale=hidden**-0.5),
            "bk": f32(rng, kv * hd, scale=0.1),
            "wv": f32(rng, kv * hd, hidden, scale=hidden**-0.5),
            "bv": f32(rng, kv * hd, scale=0.1),
            "wo": f32(rng, hidden, heads * hd, scale=(heads * hd) ** -0.5),
        }
        with torch.no_grad():
            layer.q_proj.weight.copy_(t64(weights["wq"]))
            layer.q_proj.bias.copy_(t64(weights["bq"]))
            layer.k_proj.weight.copy_(t64(weights["wk"]))
            layer.k_proj.bias.copy_(t64(weights["bk"]))
            layer.v_proj.weight.copy_(t64(weights["wv"]))
            layer.v_proj.bias.copy_(t64(weights["bv"]))
            layer.o_proj.weight.copy_(t64(weights["wo"]))
        x = f32(rng, n, l, hidden)
        cos, sin = _rope_cos_sin(torch.arange(l)[None].expand(n, l), hd, theta)
        mask = torch.from_numpy(causal_mask(l, l)).to(torch.float64)[None, None] if is_causal else None
        with torch.no_grad():
            out, _ = layer(t64(x), (cos, sin), mask)
        arrays = dict(weights, x=x, out=out.numpy())
        w.case(
            DAY, "qwen2_attention", name, seed + i, arrays,
            hidden_size=hidden, num_heads=heads, num_kv_heads=kv, theta=theta, causal=is_causal, max_seq_len=64,
        )


def generate(w):
    torch.manual_seed(SEED)
    grouped(w, SEED)
    causal_masks(w, SEED + 100)
    qwen2_attention(w, SEED + 200)
    return {DAY: SEED}
