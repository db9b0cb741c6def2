"""Loader fixtures: an MLX 4-bit (affine) quantized Qwen2 checkpoint.

The tied W1D5 checkpoint (written by w1d5.py) is quantized the way mlx-lm
stores quantized models: every Linear and Embedding weight becomes
`<name>.weight` (uint32, eight 4-bit values per word, low nibble first),
`<name>.scales` and `<name>.biases` (bf16, one per group of 32 inputs), and
config.json gains "quantization": {"group_size": 32, "bits": 4}. The group is
32, not MLX's default 64, because the tiny model's MLP width (160) is not a
multiple of 64. The reference log-probs come from Hugging Face Qwen2ForCausalLM
with each weight replaced by MLX's `dequantize` of it.
"""

import json
import os

import mlx.core as mx
import numpy as np
import torch
from safetensors.torch import save_file
from transformers import Qwen2ForCausalLM

DAY = "loader"
SEED = 1801
GROUP, BITS = 32, 4


def generate(w):
    src = os.path.join(w.root, "w1d5", "checkpoints", "tied")
    model = Qwen2ForCausalLM.from_pretrained(src, torch_dtype=torch.bfloat16)
    tensors = {}
    for name, p in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied: the embedding serves as the head
        t = p.detach()
        if t.ndim == 2:
            base = name[: -len(".weight")]
            wmx = mx.array(t.to(torch.float32).numpy()).astype(mx.bfloat16)
            q, s, b = mx.quantize(wmx, group_size=GROUP, bits=BITS)
            tensors[base + ".weight"] = torch.from_numpy(np.array(q).view(np.int32).copy()).view(torch.uint32)
            tensors[base + ".scales"] = torch.from_numpy(np.array(s.astype(mx.float32))).to(torch.bfloat16)
            tensors[base + ".biases"] = torch.from_numpy(np.array(b.astype(mx.float32))).to(torch.bfloat16)
            deq = mx.dequantize(q, s.astype(mx.float32), b.astype(mx.float32), group_size=GROUP, bits=BITS)
            with torch.no_grad():
                p.copy_(torch.from_numpy(np.array(deq)).to(p.dtype))
        else:
            tensors[name] = t.contiguous()
    folder = os.path.join(w.root, DAY, "checkpoints", "q4")
    os.makedirs(folder, exist_ok=True)
    save_file(tensors, os.path.join(folder, "model.safetensors"), metadata={"format": "mlx"})
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    cfg["quantization"] = {"group_size": GROUP, "bits": BITS}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")

    # Reference: the dequantized weights (exact in bf16 only if scale*q+bias
    # is; so compute in float32 from the float32 dequantized values).
    ref = Qwen2ForCausalLM.from_pretrained(src, torch_dtype=torch.float32, attn_implementation="eager").eval()
    sd = ref.state_dict()
    with torch.no_grad():
        for name, t in tensors.items():
            if name.endswith(".weight") and name[: -len(".weight")] + ".scales" in tensors:
                base = name[: -len(".weight")]
                q = mx.array(t.view(torch.int32).numpy().view(np.uint32))
                s = mx.array(tensors[base + ".scales"].to(torch.float32).numpy())
                b = mx.array(tensors[base + ".biases"].to(torch.float32).numpy())
                sd[name].copy_(torch.from_numpy(np.array(mx.dequantize(q, s, b, group_size=GROUP, bits=BITS))))
        ref.tie_weights()
        rng = np.random.default_rng(SEED)
        tokens = rng.integers(0, cfg["vocab_size"], size=(2, 10), dtype=np.int64)
        logprobs = torch.log_softmax(ref(input_ids=torch.from_numpy(tokens)).logits, dim=-1)
    emb = sd["model.embed_tokens.weight"].numpy()
    w.case(DAY, "dequantize", "embed_tokens", SEED, {"out": emb}, checkpoint=f"{DAY}/checkpoints/q4",
           tensor="model.embed_tokens.weight")
    w.case(DAY, "quantized_model", "q4_group32", SEED, {"tokens": tokens, "logprobs": logprobs.numpy()},
           checkpoint=f"{DAY}/checkpoints/q4", group_size=GROUP, bits=BITS)
    return {DAY: SEED}
