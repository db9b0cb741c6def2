"""W1D2 fixtures: rotary positional embedding (RoPE), both forms.

The traditional form rotates interleaved pairs (x0,x1), (x2,x3), ...; the
non-traditional form, which Qwen2 uses, rotates the pairs (x_i, x_{i+D/2}).
Every case is computed twice: by MLX `mx.fast.rope` (float32) and by PyTorch in
float64 (Hugging Face's Qwen2 `apply_rotary_pos_emb` for the half-split form, the
interleaved rotation written out for the traditional form). The two must agree
before anything is written; the float64 result is stored.
"""

import mlx.core as mx
import numpy as np
import torch
from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb

DAY = "w1d2"
SEED = 1201


def _mlx_rope(x, dims, base, traditional, offsets):
    """x is N x L x H x D; MLX wants the sequence axis second to last."""
    out = []
    for n in range(x.shape[0]):
        a = mx.array(x[n : n + 1]).transpose(0, 2, 1, 3)  # 1 x H x L x D
        r = mx.fast.rope(a, dims, traditional=traditional, base=base, scale=1.0, offset=int(offsets[n]))
        out.append(np.array(r.transpose(0, 2, 1, 3)))
    return np.concatenate(out, axis=0)


def _torch_interleaved_rope(x, base, offsets):
    """The traditional form written out in float64: rotate (x[2i], x[2i+1]) by pos*base^(-2i/D)."""
    n, l, h, d = x.shape
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    pos = torch.tensor([[o + i for i in range(l)] for o in offsets], dtype=torch.float64)
    ang = (pos[..., None] * inv_freq)[:, :, None, :]  # N x L x 1 x D/2
    t = torch.from_numpy(x).to(torch.float64)
    even, odd = t[..., 0::2], t[..., 1::2]
    out = torch.empty_like(t)
    out[..., 0::2] = even * ang.cos() - odd * ang.sin()
    out[..., 1::2] = even * ang.sin() + odd * ang.cos()
    return out.numpy()


def _hf_rope(x, base, offsets):
    """Hugging Face's half-split rotation, with cos/sin built as Qwen2 builds them, in float64."""
    n, l, h, d = x.shape
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    pos = torch.tensor([[o + i for i in range(l)] for o in offsets], dtype=torch.float64)
    freqs = pos[..., None] * inv_freq  # N x L x D/2
    emb = torch.cat([freqs, freqs], dim=-1)
    q = torch.from_numpy(x).to(torch.float64).transpose(1, 2)  # N x H x L x D
    out, _ = apply_rotary_pos_emb(q, q, emb.cos(), emb.sin())
    return out.transpose(1, 2).numpy()


def generate(w):
    cases = [
        # name, N, L, H, D, base, traditional, offsets (None, one, or per row)
        ("no_offset", 2, 6, 4, 8, 10000.0, True, None),
        ("offset", 2, 5, 2, 16, 10000.0, True, [7]),
        ("offset_per_row", 3, 4, 2, 8, 10000.0, True, [0, 5, 11]),
        ("no_offset", 2, 6, 4, 8, 10000.0, False, None),
        ("offset", 2, 5, 2, 16, 10000.0, False, [7]),
        ("offset_per_row", 3, 4, 2, 8, 10000.0, False, [0, 5, 11]),
        # Qwen2's base and head size, at positions where float32 angles lose digits.
        ("qwen2_theta", 1, 8, 2, 64, 1000000.0, False, [1000]),
    ]
    for i, (name, n, l, h, d, base, trad, offsets) in enumerate(cases):
        seed = SEED + i
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, l, h, d)).astype(np.float32)
        per_row = [0] * n if offsets is None else (offsets * n if len(offsets) == 1 else offsets)
        out = _mlx_rope(x, d, base, trad, per_row)
        ref = _torch_interleaved_rope(x, base, per_row) if trad else _hf_rope(x, base, per_row)
        err = np.abs(out - ref).max()
        if err > 2e-4:
            raise SystemExit(f"w1d2/{name}: MLX and the PyTorch reference disagree by {err}")
        # Both agree; store the float64 one, which is the correctly rounded answer.
        out = ref.astype(np.float32)
        arrays = {"x": x, "out": out}
        if offsets is not None:
            arrays["offsets"] = np.array(offsets, dtype=np.int64)
        task = "rope_traditional" if trad else "rope_halves"
        w.case(DAY, task, name, seed, arrays, base=base, traditional=trad, seq_len=l + max(per_row))
    return {DAY: SEED}
