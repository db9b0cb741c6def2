"""W2D2 fixtures: the cost of one forward pass, counted by PyTorch.

For each Qwen2 configuration and each call (a prefill of L tokens from
position 0, a prefill chunk after earlier positions, one decode step at
position p) this writes what an independent counter measured:

- FLOPs: torch.utils.flop_counter.FlopCounterMode around Hugging Face's
  Qwen2ForCausalLM (eager attention, a DynamicCache filled by an earlier,
  uncounted call up to the offset). The counter counts 2*M*N*K for every
  mm/addmm/bmm and nothing for elementwise work (norms, SiLU, RoPE's
  rotation, softmax, the residual adds). Its per-module breakdown gives three
  numbers: the seven projections of every layer (`linear`), the LM head
  (`head`, every new position: HF computes all of them), and the matrix
  products of attention itself (`attention`, q.k^T and weights.v over all
  S = offset + L keys, masked ones included, as the dense computation does).
  Anything else the counter saw is asserted to be zero, so no FLOP goes
  uncategorised.
- KV cache bytes: the DynamicCache's tensors after the call (every position
  the attention read) and their growth during it (what the call wrote).
- Weight bytes: from the tensors of a checkpoint written with save_pretrained
  (small random configs, bfloat16) or from the module's parameters (the
  Qwen2-0.5B shape, built on the meta device with no memory behind it): every
  tensor once, except that of the embedding table only the rows of the new
  tokens count when a separate lm_head is the one read whole.

The small configs run on real random weights in float32 (so the cache holds
4-byte values) and once in bfloat16 (2-byte values); the 0.5B shape runs on
the meta device in bfloat16.
"""

import os
import tempfile

import torch
from safetensors import safe_open
from torch.utils.flop_counter import FlopCounterMode
from transformers import DynamicCache, Qwen2Config, Qwen2ForCausalLM
from transformers.utils import logging as hf_logging

DAY = "w2d2"
SEED = 2201

PROJECTIONS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]

# name: (vocab, hidden, intermediate, layers, heads, kv_heads, tied)
CONFIGS = {
    "tied": (256, 64, 160, 2, 4, 2, True),
    "untied": (320, 96, 224, 3, 6, 2, False),
    "qwen2_0.5b": (151936, 896, 4864, 24, 14, 2, True),
}

# (call name, new tokens L, offset)
SMALL_CALLS = [("prefill7", 7, 0), ("chunk4_at3", 4, 3), ("decode_at9", 1, 9)]
BIG_CALLS = [("prefill128", 128, 0), ("decode_at128", 1, 128), ("decode_at1024", 1, 1024)]


def _config(name):
    vocab, hidden, inter, layers, heads, kv, tied = CONFIGS[name]
    return Qwen2Config(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        tie_word_embeddings=tied,
        max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        attn_implementation="eager",
        use_sliding_window=False,
    )


def _count(model, cfg, new_tokens, offset, device):
    """FLOPs by category and cache bytes of one call of new_tokens at offset."""
    cache = DynamicCache(config=cfg)
    ids = torch.zeros((1, offset + new_tokens), dtype=torch.long, device=device)
    with torch.no_grad():
        if offset > 0:
            model(input_ids=ids[:, :offset], past_key_values=cache, use_cache=True)
        before = _cache_bytes(cache)
        assert cache.get_seq_length() == offset
        fc = FlopCounterMode(display=False)
        with fc:
            model(input_ids=ids[:, offset:], past_key_values=cache, use_cache=True)
    after = _cache_bytes(cache)
    assert cache.get_seq_length() == offset + new_tokens
    counts = {k: sum(v.values()) for k, v in fc.get_flop_counts().items()}
    root = "Qwen2ForCausalLM"
    layers = cfg.num_hidden_layers
    linear = sum(counts.get(f"{root}.model.layers.{i}.{p}", 0) for i in range(layers) for p in PROJECTIONS)
    head = counts.get(f"{root}.lm_head", 0)
    attention = sum(
        counts.get(f"{root}.model.layers.{i}.self_attn", 0)
        - sum(counts.get(f"{root}.model.layers.{i}.{p}", 0) for p in PROJECTIONS[:4])
        for i in range(layers)
    )
    total = counts["Global"]
    assert total == linear + head + attention, (total, linear, head, attention, counts)
    return dict(linear_flops=linear, head_flops=head, attention_flops=attention, total_flops=total,
                kv_read_bytes=after, kv_write_bytes=after - before)


def _cache_bytes(cache):
    return sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers if layer.keys is not None)


def _case(w, name, call, new_tokens, offset, weight_bytes, cache_bytes, tensors, counted, seed):
    vocab, hidden, inter, layers, heads, kv, tied = CONFIGS[name]
    expect = dict(counted)
    expect["weight_bytes"] = _read_weight_bytes(tensors, new_tokens)
    w.case(
        DAY,
        "cost",
        f"{name}_{cache_bytes * 8}bit_cache_{call}",
        seed,
        {},
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        tie_word_embeddings=tied,
        weight_bytes_per_value=weight_bytes,
        cache_bytes_per_value=cache_bytes,
        new_tokens=new_tokens,
        offset=offset,
        expect=expect,
    )


def _read_weight_bytes(tensors, new_tokens):
    """Bytes of weights one call reads: every tensor once; of a separate
    embedding table (untied) only the rows of the new tokens."""
    emb = "model.embed_tokens.weight"
    total = sum(b for k, (b, _) in tensors.items() if k != emb)
    b, rows = tensors[emb]
    if "lm_head.weight" in tensors:
        total += new_tokens * (b // rows)
    else:
        total += b
    return total


def _file_tensors(folder):
    """name -> (bytes, rows) of every tensor stored in the checkpoint's files."""
    out = {}
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".safetensors"):
            continue
        with safe_open(os.path.join(folder, f), framework="pt") as st:
            for k in st.keys():
                t = st.get_slice(k)
                shape = t.get_shape()
                n = 1
                for d in shape:
                    n *= d
                out[k] = (n * {"BF16": 2, "F16": 2, "F32": 4}[t.get_dtype()], shape[0])
    return out


def _param_tensors(model, itemsize):
    """name -> (bytes, rows) of the module's parameters (tied ones once)."""
    return {k: (p.numel() * itemsize, p.shape[0]) for k, p in model.named_parameters()}


def generate(w):
    hf_logging.disable_progress_bar()
    for i, name in enumerate(["tied", "untied"]):
        seed = SEED + 10 * i
        cfg = _config(name)
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(cfg).eval()
        with tempfile.TemporaryDirectory() as tmp:
            model.to(torch.bfloat16).save_pretrained(tmp, safe_serialization=True)
            tensors = _file_tensors(tmp)
        for dtype, cache_bytes in [(torch.float32, 4), (torch.bfloat16, 2)]:
            model = model.to(dtype)
            for call, l, off in SMALL_CALLS:
                counted = _count(model, cfg, l, off, "cpu")
                _case(w, name, call, l, off, 2, cache_bytes, tensors, counted, seed)
    name = "qwen2_0.5b"
    cfg = _config(name)
    with torch.device("meta"):
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16).eval()
    tensors = _param_tensors(model, 2)
    for call, l, off in BIG_CALLS:
        counted = _count(model, cfg, l, off, "meta")
        _case(w, name, call, l, off, 2, 2, tensors, counted, SEED + 100)
    return {DAY: SEED}
