"""Full-size fidelity check of the Week 1 model (maintainers; best run on a GPU machine).

Builds a randomly initialised Qwen2 with the real Qwen2-0.5B-Instruct
configuration in Hugging Face transformers, saves it as a bf16 Hugging Face
checkpoint, and writes the log-probs Qwen2ForCausalLM gives (float32 compute on
the bf16 weights) for a 32-token input:

    OUT/checkpoint/{config.json, model.safetensors, ...}
    OUT/tokens.npy      int64   [1, 32]
    OUT/logprobs.npy    float32 [1, 32, 151936]

The Go side then runs solutions/week1/day5 on the same checkpoint and compares:

    TINYLLM_FIDELITY_DIR=OUT go test -run W1D5Fidelity -v ./solutions/week1/day5

`make fidelity-w1d5` does both (see the Makefile). Nothing
here is committed output: the checkpoint is 1 GB.
"""

import argparse
import os

import numpy as np
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

# Qwen/Qwen2-0.5B-Instruct's config.json, the fields that shape the model.
QWEN2_0_5B = dict(
    vocab_size=151936,
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    max_position_embeddings=32768,
    rope_theta=1000000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
    hidden_act="silu",
    bos_token_id=151643,
    eos_token_id=151645,
)
SEED = 2024
TOKENS = 32


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.manual_seed(SEED)
    device = "cuda" if torch.cuda.is_available() else "cpu"

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

    ref = Qwen2ForCausalLM.from_pretrained(ckpt, torch_dtype=torch.float32, attn_implementation="eager").to(device).eval()
    rng = np.random.default_rng(SEED)
    tokens = rng.integers(0, cfg.vocab_size, size=(1, TOKENS), dtype=np.int64)
    with torch.no_grad():
        logits = ref(input_ids=torch.from_numpy(tokens).to(device)).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1).cpu().numpy().astype(np.float32)
    np.save(os.path.join(args.out, "tokens.npy"), tokens)
    np.save(os.path.join(args.out, "logprobs.npy"), logprobs)
    print(f"fidelity: wrote {ckpt} and log-probs {logprobs.shape} on {device} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
