"""Fidelity of the Week 2 GPU engine (W2D7) on a Qwen2-0.5B shape (maintainers, GPU machine).

Builds a randomly initialised Qwen2 with the real Qwen2-0.5B-Instruct
configuration (q/k/v biases drawn too), saves it as a bf16 Hugging Face
checkpoint, and writes Hugging Face's log-probs for 128 random tokens twice:
float32 compute on the bf16 weights (the reference), and HF's own bf16 run on
the GPU (what "as good as the engines people use" is measured against):

    OUT/checkpoint/{config.json, model.safetensors, ...}
    OUT/tokens.npy          int64   [128]
    OUT/logprobs.npy        float32 [128, 151936]   HF float32
    OUT/logprobs_bf16.npy   float32 [128, 151936]   HF bf16 on the GPU

The Go side (internal/grade/w2d7 Fidelity) runs the GPU engine teacher-forced
over the same tokens and requires max |Δ log-prob| against float32 at most
1.5 times HF bf16's, and top-1 agreement at most one point below HF bf16's:

    TINYLLM_W2D7_FIDELITY_DIR=OUT bin/gpu/solutions-w2d7.test -test.run W2D7Fidelity -test.v

scripts/gpu-check.sh runs this script when PyTorch is there. Nothing here is
committed output: the checkpoint is 1 GB.
"""

import argparse
import os
import sys

import numpy as np
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qwen2_full_size import QWEN2_0_5B  # noqa: E402  the one copy of the shape

SEED = 2027
TOKENS = 128


def logprobs(model, tokens):
    with torch.no_grad():
        logits = model(input_ids=torch.from_numpy(tokens[None]).to(model.device)).logits[0].float()
        return torch.log_softmax(logits, dim=-1).cpu().numpy().astype(np.float32)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("qwen2_gpu_fidelity: needs a CUDA GPU (HF's bf16 run is the GPU's)")
    torch.manual_seed(SEED)
    cfg = Qwen2Config(**QWEN2_0_5B, torch_dtype="bfloat16")
    model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():
        # The default init leaves q/k/v biases at zero; real checkpoints do not.
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0.0, 0.02)
    model = model.to(torch.bfloat16)
    ckpt = os.path.join(args.out, "checkpoint")
    model.save_pretrained(ckpt, safe_serialization=True)
    del model

    rng = np.random.default_rng(SEED)
    tokens = rng.integers(0, cfg.vocab_size, size=(TOKENS,), dtype=np.int64)
    f32 = Qwen2ForCausalLM.from_pretrained(ckpt, torch_dtype=torch.float32, attn_implementation="eager").to("cuda").eval()
    ref = logprobs(f32, tokens)
    del f32
    torch.cuda.empty_cache()
    bf16 = Qwen2ForCausalLM.from_pretrained(ckpt, torch_dtype=torch.bfloat16, attn_implementation="eager").to("cuda").eval()
    low = logprobs(bf16, tokens)
    np.save(os.path.join(args.out, "tokens.npy"), tokens)
    np.save(os.path.join(args.out, "logprobs.npy"), ref)
    np.save(os.path.join(args.out, "logprobs_bf16.npy"), low)
    delta = float(np.abs(low - ref).max())
    top1 = 100.0 * float((low.argmax(-1) == ref.argmax(-1)).mean())
    print(f"fidelity: wrote {ckpt}; HF bf16 against float32: max |Δ log-prob| {delta:.4f}, top-1 agreement {top1:.1f}% "
          f"(torch {torch.__version__}, {torch.cuda.get_device_name()})")


if __name__ == "__main__":
    main()
