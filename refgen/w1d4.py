"""W1D4 fixtures: RMSNorm, SiLU and the SwiGLU MLP, from Hugging Face's Qwen2
modules (`Qwen2RMSNorm`, `Qwen2MLP`) and PyTorch's silu, in float64 from float32
inputs, stored as float32."""

import numpy as np
import torch
from transformers import Qwen2Config
from transformers.models.qwen2.modeling_qwen2 import Qwen2MLP, Qwen2RMSNorm

from common import causal_mask, f32, t64  # noqa: E402

DAY = "w1d4"
SEED = 1401






def rms_norm(w, seed):
    cases = [
        # name, shape, input scale, eps
        ("no_batch", (16,), 1.0, 1e-6),
        ("batch2", (5, 32), 1.0, 1e-6),
        ("batch3", (2, 3, 64), 1.0, 1e-5),
        # Large activations: squares reach 1e6, sums over the row 1e8.
        ("large_inputs", (2, 4, 896), 1000.0, 1e-6),
        ("tiny_inputs", (3, 16), 1e-4, 1e-6),
    ]
    for i, (name, shape, scale, eps) in enumerate(cases):
        rng = np.random.default_rng(seed + i)
        x = f32(rng, *shape, scale=scale)
        weight = (1.0 + f32(rng, shape[-1], scale=0.2)).astype(np.float32)
        norm = Qwen2RMSNorm(shape[-1], eps=eps).to(torch.float64)
        with torch.no_grad():
            norm.weight.copy_(t64(weight))
            out = norm(t64(x))
        w.case(DAY, "rms_norm", name, seed + i, {"x": x, "weight": weight, "out": out.numpy()}, eps=eps)


def silu(w, seed):
    rng = np.random.default_rng(seed)
    cases = {
        "range20": np.linspace(-20, 20, 81, dtype=np.float32).reshape(9, 9),
        "random": f32(rng, 2, 3, 16),
        # exp overflows float32 here: x*exp(x)/(1+exp(x)) gives Inf/Inf = NaN for large x,
        # and 1/(1+exp(-x)) must not turn -1000 into NaN either.
        "range1000": np.array([-1000, -200, -100, -88, -30, 0, 30, 88, 100, 200, 1000], dtype=np.float32),
    }
    for i, (name, x) in enumerate(sorted(cases.items())):
        out = torch.nn.functional.silu(t64(x))
        w.case(DAY, "silu", name, seed, {"x": x, "out": out.numpy()})


def mlp(w, seed):
    cases = [
        # name, x shape, hidden, intermediate
        ("no_batch", (5, 32), 32, 80),
        ("batch3", (2, 4, 32), 32, 80),
        ("wide", (2, 3, 64), 64, 224),
    ]
    for i, (name, shape, hidden, inter) in enumerate(cases):
        rng = np.random.default_rng(seed + i)
        cfg = Qwen2Config(hidden_size=hidden, intermediate_size=inter, hidden_act="silu")
        layer = Qwen2MLP(cfg).to(torch.float64)
        wg = f32(rng, inter, hidden, scale=hidden**-0.5)
        wu = f32(rng, inter, hidden, scale=hidden**-0.5)
        wd = f32(rng, hidden, inter, scale=inter**-0.5)
        x = f32(rng, *shape)
        with torch.no_grad():
            layer.gate_proj.weight.copy_(t64(wg))
            layer.up_proj.weight.copy_(t64(wu))
            layer.down_proj.weight.copy_(t64(wd))
            out = layer(t64(x))
        arrays = {"x": x, "w_gate": wg, "w_up": wu, "w_down": wd, "out": out.numpy()}
        w.case(DAY, "mlp", name, seed + i, arrays, hidden_size=hidden, intermediate_size=inter)


def generate(w):
    rms_norm(w, SEED)
    silu(w, SEED + 100)
    mlp(w, SEED + 200)
    return {DAY: SEED}
