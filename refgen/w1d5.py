"""W1D5 fixtures: the Qwen2 transformer block, the embedding, and whole small models.

Two small random Qwen2 checkpoints are written as real Hugging Face folders
(config.json, model.safetensors in bfloat16, generation_config.json) by
`Qwen2ForCausalLM.save_pretrained`, one with tied word embeddings and one with a
separate lm_head. The reference log-probs are Hugging Face's own forward pass,
in float32, on those saved bf16 weights read back and widened to float32: exactly
what the Go model computes when it widens the stored weights where it uses them.

The block cases run layer 0 of the tied model (float32) on a random input, with
the causal mask and with no mask at all; their weights are stored as float32
arrays so the block can be checked without a safetensors reader.
"""

import os

import numpy as np
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM
from transformers.utils import logging as hf_logging

import common

DAY = "w1d5"
SEED = 1005

# Checkpoints live next to the fixtures; meta.json names them relative to testdata/.
CHECKPOINTS = {
    # case: (tie_word_embeddings, rope_theta)
    "tied": (True, 10000.0),
    "untied": (False, 1000000.0),
}

CONFIG = dict(
    vocab_size=256,
    hidden_size=64,
    intermediate_size=160,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    rms_norm_eps=1e-6,
    initializer_range=0.08,
    hidden_act="silu",
    use_sliding_window=False,
    bos_token_id=0,
    eos_token_id=1,
)

# Standard deviations of the deterministic random initialisation: large enough
# that every weight moves the output (a mixed-up projection or a forgotten bias
# shows up far above the 1e-3 log-prob tolerance), small enough to stay tame.
WEIGHT_STD = 0.08
EMBED_STD = 0.1
BIAS_STD = 0.05
NORM_STD = 0.1  # norm weights are 1 + NORM_STD * N(0, 1)


def _config(tie, theta):
    return Qwen2Config(
        **CONFIG,
        tie_word_embeddings=tie,
        rope_parameters={"rope_type": "default", "rope_theta": theta},
        dtype="bfloat16",
    )


def _init(model, seed):
    """Overwrites every parameter from one seeded generator, in name order.

    Hugging Face leaves biases at zero and norm weights at one; those would let a
    model that forgets the q/k/v bias or the norm weight pass, so every parameter
    gets random values here, independent of the library's own init scheme.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + NORM_STD * noise)
            elif name.endswith(".bias"):
                p.copy_(BIAS_STD * noise)
            elif "embed_tokens" in name:
                p.copy_(EMBED_STD * noise)
            else:
                p.copy_(WEIGHT_STD * noise)


def _save_checkpoint(folder, tie, theta, seed):
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(_config(tie, theta))
    _init(model, seed)
    model = model.to(torch.bfloat16).eval()
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    common.normalise_json_files(folder)


def _load_f32(folder):
    model = Qwen2ForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    return model.eval()


def _causal_np(l):
    m = np.zeros((l, l), dtype=np.float32)
    for i in range(l):
        m[i, i + 1 :] = -np.inf
    return m


def models(w, root, seed):
    """Writes the checkpoints and the whole-model log-prob cases; returns the tied model."""
    tied_model = None
    for i, (case, (tie, theta)) in enumerate(CHECKPOINTS.items()):
        rel = f"{DAY}/checkpoints/{case}"
        folder = os.path.join(root, rel)
        _save_checkpoint(folder, tie, theta, seed + i)
        model = _load_f32(folder)
        rng = np.random.default_rng(seed + 10 + i)
        tokens = rng.integers(0, CONFIG["vocab_size"], size=(2, 12), dtype=np.int64)
        with torch.no_grad():
            logits = model(input_ids=torch.from_numpy(tokens)).logits
            logprobs = torch.log_softmax(logits.to(torch.float32), dim=-1)
        w.case(
            DAY,
            "model",
            case,
            seed + i,
            {"tokens": tokens, "logprobs": logprobs.numpy().astype(np.float32)},
            checkpoint=rel,
            tie_word_embeddings=tie,
            rope_theta=theta,
            vocab_size=CONFIG["vocab_size"],
        )
        if case == "tied":
            tied_model = model
    return tied_model


def block(w, model, seed):
    cfg = model.config
    layer = model.model.layers[0]
    attn, mlp = layer.self_attn, layer.mlp
    weights = {
        "wq": attn.q_proj.weight,
        "bq": attn.q_proj.bias,
        "wk": attn.k_proj.weight,
        "bk": attn.k_proj.bias,
        "wv": attn.v_proj.weight,
        "bv": attn.v_proj.bias,
        "wo": attn.o_proj.weight,
        "w_gate": mlp.gate_proj.weight,
        "w_up": mlp.up_proj.weight,
        "w_down": mlp.down_proj.weight,
        "w_input_norm": layer.input_layernorm.weight,
        "w_post_attention_norm": layer.post_attention_layernorm.weight,
    }
    weights = {k: v.detach().to(torch.float32).numpy().copy() for k, v in weights.items()}

    n, l = 2, 7
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, l, cfg.hidden_size)).astype(np.float32)
    xt = torch.from_numpy(x)
    position_ids = torch.arange(l).unsqueeze(0).expand(n, l)
    cos_sin = model.model.rotary_emb(xt, position_ids)
    causal = _causal_np(l)

    outs = {}
    for causal_case in (True, False):
        # An explicit 4-D additive mask: with the eager implementation it is added
        # to the scores as given, so an all-zero mask really means "no masking".
        m = causal if causal_case else np.zeros((l, l), dtype=np.float32)
        mask4 = torch.from_numpy(m)[None, None].expand(n, 1, l, l)
        with torch.no_grad():
            out = layer(xt, attention_mask=mask4, position_ids=position_ids, position_embeddings=cos_sin)
        if isinstance(out, tuple):
            out = out[0]
        outs[causal_case] = out.numpy().astype(np.float32)
        arrays = dict(weights, x=x, out=outs[causal_case])
        if causal_case:
            arrays["mask"] = causal
        w.case(
            DAY,
            "block",
            "causal" if causal_case else "unmasked",
            seed,
            arrays,
            num_heads=cfg.num_attention_heads,
            num_kv_heads=cfg.num_key_value_heads,
            hidden_size=cfg.hidden_size,
            intermediate_size=cfg.intermediate_size,
            rms_norm_eps=cfg.rms_norm_eps,
            rope_theta=cfg.rope_parameters["rope_theta"],
            causal=causal_case,
        )

    # The causal case must agree with the model's own mask, and the two cases must
    # differ (or the unmasked case would not test anything).
    with torch.no_grad():
        full = model.model(inputs_embeds=xt, output_hidden_states=True).hidden_states[1]
    assert np.allclose(full.numpy(), outs[True], atol=1e-6), "block: explicit causal mask disagrees with the model's"
    diff = np.abs(outs[True] - outs[False]).max()
    assert diff > 1e-2, f"block: causal and unmasked outputs differ by only {diff}"
    # The last position sees every position in both cases.
    assert np.abs(outs[True][:, -1] - outs[False][:, -1]).max() < 1e-5, "block: last row should not depend on the mask"


def embedding(w, seed):
    rng = np.random.default_rng(seed)
    vocab, dim = 32, 8
    weight = rng.standard_normal((vocab, dim)).astype(np.float32)
    # Include the first and last rows and a repeated id.
    tokens = np.array([[0, 31, 5, 5, 17], [3, 9, 0, 28, 12]], dtype=np.int64)
    out = weight[tokens]
    w.case(DAY, "embedding", "gather", seed, {"weight": weight, "tokens": tokens, "out": out}, vocab_size=vocab, dim=dim)

    rng = np.random.default_rng(seed + 1)
    weight = rng.standard_normal((vocab, dim)).astype(np.float32)
    x = rng.standard_normal((2, 5, dim)).astype(np.float32)
    out = (torch.from_numpy(x).to(torch.float64) @ torch.from_numpy(weight).to(torch.float64).T).numpy()
    w.case(DAY, "as_linear", "tied_head", seed + 1, {"weight": weight, "x": x, "out": out}, vocab_size=vocab, dim=dim)


def generate(w):
    hf_logging.disable_progress_bar()
    torch.manual_seed(SEED)
    model = models(w, w.root, SEED)
    block(w, model, SEED + 100)
    embedding(w, SEED + 200)
    return {DAY: SEED}
