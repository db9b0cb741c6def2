"""Fixtures of `tinyllm quantize`: MLX's affine quantization and mlx-lm's converter.

affine/<dtype>_b<bits>_g<group>/: a weight matrix with awkward rows (a constant
row, zeros of both signs, all-negative and all-positive rows, one outlier per
group, values below MLX's 1e-7 scale floor, groups symmetric about zero, exact
ties of the code rounding, large values), in the dtype named, and what
`mx.quantize` (CPU) makes of it: the packed words and the scales and biases, the
latter widened to float32 (exact for bf16 and f16, so comparing them compares
the stored bits).

checkpoints/<name>/: small random Qwen2 models in Hugging Face format, written by
transformers, with the tiny test tokenizer; mlx/<case>/: what
`mlx_lm.convert(quantize=True)` writes for them (weights, config.json, index);
mlx_lm_logits/<case>/: the logits of `mlx_lm.load` on that folder for a few
token sequences, computed in float32 (the loaded parameters widened, which is
exact) so that the Go engine can be held to them closely.
"""

import json
import os
import shutil
import tempfile

import mlx.core as mx
import numpy as np
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

import common

DAY = "quantize"
SEED = 3101

DTYPES = {"bfloat16": mx.bfloat16, "float16": mx.float16, "float32": mx.float32}


def awkward_weights(rng, rows=10, cols=256):
    """Rows that each exercise one corner of the algorithm, for any group size
    that divides 32 (every pattern repeats every 32 columns)."""
    w = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
    w[0] = 0.37  # a constant group: the edge alone decides scale and bias
    w[1] = 0.0  # zeros, half of them negative zeros: q0 = 0, bias 0
    w[1, ::2] = -0.0
    w[2] = -np.abs(w[2]) - 0.01  # all negative: positive scale
    w[3, 5::32] = 2.5  # one outlier per group
    w[4] = np.abs(w[4]) + 0.02  # all positive: negative scale
    w[5] = -1.25  # a negative constant
    w[6] *= 1e-6  # range / (2^bits - 1) below the 1e-7 floor
    w[7, 0::32] = -0.5  # |min| == |max|: the maximum is the edge
    w[7, 1::32] = 0.5
    k = np.arange(cols) % 16
    w[8] = np.where(k == 15, 15 / 16, (k + 0.5) / 16)  # codes exactly halfway: ties to even
    w[8, 0::32] = 0.0
    w[9] = w[9] * 2000  # large values (still finite in float16)
    w[9, 7::32] = -30000.0
    return w


def affine_cases(w):
    i = 0
    for dname, dt in DTYPES.items():
        for bits in (4, 8):
            for group in (32, 64, 128):
                rng = np.random.default_rng(SEED + i)
                i += 1
                wmx = mx.array(awkward_weights(rng)).astype(dt)
                q, s, b = mx.quantize(wmx, group_size=group, bits=bits)
                arrays = {
                    "w": np.array(wmx.astype(mx.float32)),
                    "words": np.array(q),
                    "scales": np.array(s.astype(mx.float32)),
                    "biases": np.array(b.astype(mx.float32)),
                }
                w.case(DAY, "affine", f"{dname}_b{bits}_g{group}", SEED, arrays, dtype=dname, bits=bits, group_size=group)


# name: (torch dtype of the tensors, config torch_dtype, tied, layers, hidden, intermediate)
CHECKPOINTS = {
    "bf16_tied": (torch.bfloat16, "bfloat16", True, 2, 128, 128),
    # float32 tensors under a config that says float16: mlx_lm.convert casts
    # every weight to float16 before quantizing.
    "f32_untied_says_f16": (torch.float32, "float16", False, 1, 64, 128),
}

# case: (checkpoint, bits, group size)
CASES = {
    "bf16_tied_q4_g64": ("bf16_tied", 4, 64),
    "bf16_tied_q8_g128": ("bf16_tied", 8, 128),
    "f32_untied_q8_g32": ("f32_untied_says_f16", 8, 32),
}


def write_checkpoint(root, name, seed):
    dtype, says, tied, layers, hidden, intermediate = CHECKPOINTS[name]
    cfg = Qwen2Config(vocab_size=320, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=tied,
                      bos_token_id=0, eos_token_id=1)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg).to(torch.float32)
    with torch.no_grad():
        # Every parameter random, norms around 1 and biases non-zero, so that
        # the logits depend on all of them.
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif pname.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))
    model = model.to(dtype)
    folder = os.path.join(root, DAY, "checkpoints", name)
    model.save_pretrained(folder, safe_serialization=True)
    with open(os.path.join(folder, "config.json")) as f:
        c = json.load(f)
    # As the configs of Qwen2 models on the Hugging Face Hub write them:
    # mlx_lm.convert reads torch_dtype (not transformers 5's "dtype"), and
    # mlx-lm's Qwen2 reads a top-level rope_theta (not rope_parameters;
    # without one it takes 1e6).
    c["torch_dtype"] = says
    c["rope_theta"] = c["rope_parameters"]["rope_theta"]
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(c, f)
    return folder


def generate(w):
    affine_cases(w)
    tok_dir = os.path.join(w.root, "tokenizer", "tiny")  # written by tokenizer.py, which runs first
    folders = {}
    for i, name in enumerate(CHECKPOINTS):
        folder = write_checkpoint(w.root, name, SEED + 100 + i)
        shutil.copy(os.path.join(tok_dir, "tokenizer.json"), folder)
        common.normalise_json_files(folder)
        folders[name] = folder

    import mlx_lm
    from mlx.utils import tree_map
    from mlx_lm.convert import convert

    for i, (case, (ck, bits, group)) in enumerate(CASES.items()):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "mlx")
            convert(folders[ck], mlx_path=out, quantize=True, q_group_size=group, q_bits=bits)
            dst = os.path.join(w.root, DAY, "mlx", case)
            os.makedirs(dst, exist_ok=True)
            for name in ("config.json", "model.safetensors", "model.safetensors.index.json"):
                shutil.copy(os.path.join(out, name), dst)
            common.normalise_json_files(dst)
            model, _ = mlx_lm.load(out)
            model.update(tree_map(lambda p: p.astype(mx.float32) if p.dtype in (mx.bfloat16, mx.float16) else p,
                                  model.parameters()))
            rng = np.random.default_rng(SEED + 200 + i)
            tokens = rng.integers(0, 320, size=(2, 12), dtype=np.int64)
            logits = np.array(model(mx.array(tokens)).astype(mx.float32))
        w.case(DAY, "mlx_lm_logits", case, SEED, {"tokens": tokens, "logits": logits},
               checkpoint=f"{DAY}/checkpoints/{ck}", mlx=f"{DAY}/mlx/{case}", bits=bits, group_size=group)
    return {DAY: SEED}
