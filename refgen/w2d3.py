"""W2D3 fixtures: computing on MLX affine-quantized (4-bit and 8-bit) weights.

Every expected value comes from MLX on the CPU:

- dequantize / matmul / linear (small): a random float32 weight quantized by
  `mx.quantize` for bits 4 and 8 and group sizes 64 and 128 (MLX's own scales,
  negative ones included), then `mx.dequantize` of it, and
  `mx.quantized_matmul(x, w, scales, biases, transpose=True)` for x of 1, 3
  and 17 rows, with and without a bias added.
- dequantize / matmul (real shapes): the projections of Qwen2-0.5B (896→896,
  896→4864, 4864→896, 896→128) for both bit widths and both group sizes.
  Their packed words, scales and biases are not stored (they would be tens of
  MB): they are drawn from a counter-based splitmix64 stream that the Go
  checks re-create (internal/grade/w2d3/gen.go), and meta.json carries a
  checksum of them so a mismatch between the two generators is reported as
  such. Scales are ±(k+1)/4096 and biases -2^(bits-1)·scale + (m-512)/16384,
  exact in float32, so the two sides hold bit-identical inputs. What is
  stored is x (1 and 3 rows), MLX's products, and MLX's dequantization of a
  few chosen rows.
- Tolerance: a float32 sum of n products is off by up to about n·eps times
  the sum of their magnitudes in the worst case, far less in practice, and
  MLX and Go add in different orders; each matmul case stores atol =
  TOL_PER_MAGNITUDE · max over outputs of Σ|x_j·w_j| (computed here in
  float64), beside the usual rtol.
- embedding: `nn.QuantizedEmbedding` (rows for token ids, and `as_linear`).
- model: two small random Qwen2 configs built with mlx-lm, quantized by
  mlx-lm to 4 bits (group 64 tied, group 128 untied), saved as an MLX
  checkpoint (bf16 scales, biases and float weights, as mlx-lm writes them),
  then loaded back with mlx-lm, widened to float32, and run with mlx-lm's KV
  cache: a prefill of 2 x 5 tokens and 4 greedy single-token steps.
"""

import json
import os

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten
from mlx_lm.models import qwen2
from mlx_lm.models.cache import make_prompt_cache
from mlx_lm.utils import load_model, quantize_model

import common

DAY = "w2d3"
SEED = 2301

SMALL_OUT, SMALL_IN = 45, 256
ROWS = [1, 3, 17]
FORMATS = [(4, 64), (4, 128), (8, 64), (8, 128)]
# (name, out, in): the projections of Qwen2-0.5B (hidden 896, MLP 4864, 2
# key/value heads of 64).
REAL = [("q_proj", 896, 896), ("gate_proj", 4864, 896), ("down_proj", 896, 4864), ("k_proj", 128, 896)]
REAL_ROWS = [1, 3]
TOL_PER_MAGNITUDE = 5e-6
DEQUANT_ROWS = [0, 1, 63, 127]

MASK64 = (1 << 64) - 1


def splitmix64(seed, n):
    """n outputs of a counter-based splitmix64: output i mixes seed + (i+1)·γ."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def generated_weight(seed, out, inp, bits, group):
    """The packed weight the Go checks draw from the same seed (see gen.go)."""
    words = (splitmix64(seed, out * inp * bits // 32) >> np.uint64(32)).astype(np.uint32)
    g = out * inp // group
    s = splitmix64(seed + 1, g)
    k = (s >> np.uint64(56)).astype(np.int64)
    sign = np.where((s >> np.uint64(55)) & np.uint64(1), -1.0, 1.0)
    scales = (sign * (k + 1) / 4096.0).astype(np.float32)
    # The bias centres the codes, as MLX's does (about -2^(bits-1)·scale),
    # with a jitter so that no two groups share it.
    m = (splitmix64(seed + 2, g) >> np.uint64(54)).astype(np.int64)
    biases = (-(1 << (bits - 1)) * scales + (m - 512) / 16384.0).astype(np.float32)
    return words.reshape(out, -1), scales.reshape(out, -1), biases.reshape(out, -1)


def checksum(words):
    """Sum of the words modulo 2^32 and a position-weighted sum modulo 2^64."""
    w = words.reshape(-1).astype(np.uint64)
    with np.errstate(over="ignore"):
        weighted = int(np.sum(w * (np.arange(w.size, dtype=np.uint64) + np.uint64(1)), dtype=np.uint64))
    return int(np.sum(w) % (1 << 32)), str(weighted & MASK64)


def _np(a):
    return np.array(a)


def _check_and_atol(x, deq, y):
    """The case's atol (see the module comment), after checking that MLX's
    product is within it of a float64 one."""
    x64 = x.reshape(-1, x.shape[-1]).astype(np.float64)
    w64 = _np(deq).astype(np.float64)
    magnitude = np.abs(x64) @ np.abs(w64).T
    atol = float(np.float32(TOL_PER_MAGNITUDE * magnitude.max()))
    err = np.abs(_np(y).reshape(magnitude.shape) - x64 @ w64.T).max()
    assert err < atol / 4, f"MLX's product is off by {err}, atol {atol}"
    return atol


def small(w, seed):
    rng = np.random.default_rng(seed)
    for bits, group in FORMATS:
        name = f"b{bits}_g{group}"
        wf = rng.standard_normal((SMALL_OUT, SMALL_IN)).astype(np.float32)
        # A few rows whose largest magnitude is negative, so MLX stores a
        # negative scale for some of their groups.
        wf[::5] -= 1.5
        q, s, b = mx.quantize(mx.array(wf), group_size=group, bits=bits)
        deq = mx.dequantize(q, s, b, group_size=group, bits=bits)
        assert (_np(s) < 0).any(), f"{name}: no negative scale to test"
        packed = {"words": _np(q), "scales": _np(s), "biases": _np(b)}
        params = dict(bits=bits, group_size=group, out_features=SMALL_OUT, in_features=SMALL_IN)
        w.case(DAY, "dequantize", name, seed, {**packed, "out": _np(deq)}, **params)
        bias = rng.standard_normal(SMALL_OUT).astype(np.float32)
        for rows in ROWS:
            x = rng.standard_normal((rows, SMALL_IN)).astype(np.float32)
            if rows == 17:
                x = x.reshape(1, 17, SMALL_IN)  # a batch axis in front
            y = mx.quantized_matmul(mx.array(x), q, s, b, transpose=True, group_size=group, bits=bits)
            atol = _check_and_atol(x, deq, y)
            w.case(DAY, "matmul", f"{name}_rows{rows}", seed, {**packed, "x": x, "out": _np(y)}, atol=atol, **params)
            yb = y + mx.array(bias)
            w.case(DAY, "linear", f"{name}_rows{rows}", seed, {**packed, "x": x, "bias": bias, "out": _np(yb)},
                   atol=atol, **params)


def real(w, seed):
    rng = np.random.default_rng(seed)
    for i, (proj, out, inp) in enumerate(REAL):
        for j, (bits, group) in enumerate(FORMATS):
            gseed = seed * 1000 + i * 10 + j
            words, scales, biases = generated_weight(gseed, out, inp, bits, group)
            q, s, b = mx.array(words), mx.array(scales), mx.array(biases)
            deq = mx.dequantize(q, s, b, group_size=group, bits=bits)
            total, weighted = checksum(words)
            params = dict(bits=bits, group_size=group, out_features=out, in_features=inp, generator_seed=gseed,
                          words_sum=total, words_weighted_sum=weighted)
            name = f"{proj}_{out}x{inp}_b{bits}_g{group}"
            arrays = {"rows": np.array(DEQUANT_ROWS, dtype=np.int64), "out_rows": _np(deq)[DEQUANT_ROWS]}
            w.case(DAY, "dequantize_real", name, seed, arrays, **params)
            for rows in REAL_ROWS:
                x = rng.standard_normal((rows, inp)).astype(np.float32)
                y = mx.quantized_matmul(mx.array(x), q, s, b, transpose=True, group_size=group, bits=bits)
                atol = _check_and_atol(x, deq, y)
                w.case(DAY, "matmul_real", f"{name}_rows{rows}", seed, {"x": x, "out": _np(y)}, atol=atol, **params)


def embedding(w, seed):
    rng = np.random.default_rng(seed)
    vocab, dim, bits, group = 100, 128, 4, 64
    emb = nn.Embedding(vocab, dim)
    emb.weight = mx.array(rng.standard_normal((vocab, dim)).astype(np.float32))
    qe = nn.QuantizedEmbedding.from_embedding(emb, group_size=group, bits=bits)
    tokens = rng.integers(0, vocab, size=(2, 3), dtype=np.int64)
    x = rng.standard_normal((2, 3, dim)).astype(np.float32)
    arrays = {
        "words": _np(qe.weight), "scales": _np(qe.scales), "biases": _np(qe.biases),
        "tokens": tokens, "out": _np(qe(mx.array(tokens))), "x": x, "logits": _np(qe.as_linear(mx.array(x))),
    }
    assert (arrays["scales"] < 0).any()
    atol = _check_and_atol(x, mx.dequantize(qe.weight, qe.scales, qe.biases, group_size=group, bits=bits), arrays["logits"])
    w.case(DAY, "embedding", "vocab100_b4_g64", seed, arrays, bits=bits, group_size=group, vocab_size=vocab, dim=dim,
           atol=atol)


MODELS = {
    # case: (hidden, heads, kv_heads, intermediate, vocab, tie, theta, group)
    "tied": (64, 4, 2, 192, 256, True, 10000.0, 64),
    "untied": (128, 4, 2, 256, 320, False, 1000000.0, 128),
}
BITS = 4
PROMPT = (2, 5)
DECODE_STEPS = 4


def _save_model(folder, case, seed):
    hidden, heads, kv, inter, vocab, tie, theta, group = MODELS[case]
    cfg = dict(model_type="qwen2", hidden_size=hidden, num_hidden_layers=2, intermediate_size=inter,
               num_attention_heads=heads, num_key_value_heads=kv, rms_norm_eps=1e-6, vocab_size=vocab,
               max_position_embeddings=128, rope_theta=theta, tie_word_embeddings=tie)
    mx.random.seed(seed)
    model = qwen2.Model(qwen2.ModelArgs(**cfg))
    # Every parameter random, norm weights and q/k/v biases included, so a
    # forgotten bias or norm weight shows.
    rng = np.random.default_rng(seed)
    params = {}
    for name, p in tree_flatten(model.parameters()):
        if name.endswith("norm.weight"):
            v = 1 + 0.2 * rng.standard_normal(p.shape)
        elif name.endswith(".bias"):
            v = 0.5 * rng.standard_normal(p.shape)
        else:
            v = rng.standard_normal(p.shape) / np.sqrt(p.shape[-1])
        params[name] = mx.array(v.astype(np.float32))
    model.load_weights(list(params.items()))
    model.set_dtype(mx.bfloat16)
    model, qcfg = quantize_model(model, dict(cfg), group_size=group, bits=BITS)
    assert qcfg["quantization"] == {"group_size": group, "bits": BITS, "mode": "affine"}, qcfg["quantization"]
    os.makedirs(folder, exist_ok=True)
    weights = dict(tree_flatten(model.parameters()))
    assert weights["model.embed_tokens.weight"].dtype == mx.uint32
    mx.save_safetensors(os.path.join(folder, "model.safetensors"), weights, metadata={"format": "mlx"})
    full = dict(cfg, architectures=["Qwen2ForCausalLM"], bos_token_id=0, eos_token_id=1, hidden_act="silu",
                torch_dtype="bfloat16", quantization={"group_size": group, "bits": BITS})
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(full, f, indent=2, sort_keys=True)
        f.write("\n")


def model_case(w, folder, model_dir, case, seed):
    # The checkpoint as mlx-lm reads it, widened to float32 so the reference
    # computes in float32 like the Go model (bf16 -> f32 is exact).
    model, _ = load_model(__import__("pathlib").Path(folder))
    model.set_dtype(mx.float32)
    assert isinstance(model.model.embed_tokens, nn.QuantizedEmbedding)
    assert isinstance(model.model.layers[0].mlp.down_proj, nn.QuantizedLinear)
    rng = np.random.default_rng(seed)
    vocab = MODELS[case][4]
    prompt = rng.integers(0, vocab, size=PROMPT, dtype=np.int64)
    cache = make_prompt_cache(model)
    logits = model(mx.array(prompt), cache=cache)
    prefill = nn.log_softmax(logits.astype(mx.float32), axis=-1)
    steps, fed = [], []
    nxt = mx.argmax(logits[:, -1], axis=-1)
    for _ in range(DECODE_STEPS):
        fed.append(_np(nxt))
        logits = model(nxt[:, None], cache=cache)
        steps.append(_np(nn.log_softmax(logits.astype(mx.float32), axis=-1))[:, 0])
        nxt = mx.argmax(logits[:, -1], axis=-1)
    fed = np.stack(fed, axis=1).astype(np.int64)
    steps = np.stack(steps, axis=1)
    # The same tokens in one call without a cache must agree.
    whole = _np(nn.log_softmax(model(mx.array(np.concatenate([prompt, fed], axis=1))), axis=-1))
    p = PROMPT[1]
    diff = max(np.abs(whole[:, :p] - _np(prefill)).max(), np.abs(whole[:, p:] - steps).max())
    assert diff < 1e-4, f"model/{case}: cached and uncached mlx-lm log-probs differ by {diff}"
    w.case(DAY, "model", case, seed,
           {"prompt": prompt, "decode_tokens": fed, "logprobs_prefill": _np(prefill), "logprobs_decode": steps},
           model_dir=model_dir, bits=BITS, group_size=MODELS[case][7])


def generate(w):
    mx.set_default_device(mx.cpu)
    small(w, SEED)
    real(w, SEED + 1)
    embedding(w, SEED + 2)
    for i, case in enumerate(MODELS):
        rel = f"{DAY}/checkpoints/{case}"
        folder = os.path.join(w.root, rel)
        seed = SEED + 10 * (i + 1)
        _save_model(folder, case, seed)
        model_case(w, folder, "testdata/" + rel, case, seed + 1)
    return {DAY: SEED}
