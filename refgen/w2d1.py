"""W2D1 fixtures: the KV cache, checked against Hugging Face's DynamicCache.

Two small random Qwen2 checkpoints are written as Hugging Face folders in
bfloat16, with W1D5's initialisation (every parameter random, biases and norm
weights included) but shapes of their own: `tied` has 4 query heads sharing 2
key/value heads, `untied` 6 sharing 2 (three per group) and a separate
lm_head. The shipped chat model (models/tinyqwen-chat) is read from the
repository at generation time, so a retrained model only needs a rerun.

Everything is computed by transformers in float32 (the bf16 weights widened,
eager attention) with a `DynamicCache` carried from call to call:

- attention: layer 0's Qwen2Attention alone, fed 5, 1, 1, 3 and 1 new
  positions in turn, each at its position, with a bottom-right causal mask
  whenever more than one position is new;
- decode: the whole model on a prompt, then 8 single-token steps (the greedy
  choice of the step before), log-probs of every call;
- chunked: 7 tokens in one call, the reference, and as 3 then 4 (asserted
  equal here, so the reference really is the chunked result too);
- generate: `generate` (greedy) with a DynamicCache: random prompts on the
  random checkpoints, chat prompts on the shipped model.

Each cached result is also checked here against the same model run without a
cache on the whole sequence, so a fixture can never encode a cache bug of the
reference itself.
"""

import os

import numpy as np
import torch
from transformers import AutoTokenizer, DynamicCache, Qwen2Config, Qwen2ForCausalLM
from transformers.utils import logging as hf_logging

import common
import w1d5

DAY = "w2d1"
SEED = 2101
REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SHIPPED = "models/tinyqwen-chat"

BASE = dict(
    vocab_size=256,
    intermediate_size=160,
    num_hidden_layers=2,
    max_position_embeddings=128,
    rms_norm_eps=1e-6,
    initializer_range=0.08,
    hidden_act="silu",
    use_sliding_window=False,
    bos_token_id=0,
    eos_token_id=1,
)

CHECKPOINTS = {
    # case: (hidden_size, num_attention_heads, num_key_value_heads, tie, rope_theta)
    "tied": (64, 4, 2, True, 10000.0),
    "untied": (96, 6, 2, False, 1000000.0),
}

ATTENTION_STEPS = [5, 1, 1, 3, 1]
DECODE_STEPS = 8
CHUNKS = [3, 4]
MAX_NEW = 12
MIN_GAP = 1e-3
SHIPPED_MAX_NEW = 40

SHIPPED_DECODE = [{"role": "user", "content": "What is 12 + 30?"}]
# Conversations for greedy generation on the shipped model, each with the
# prefill chunk the Go check uses; the first SHIPPED_CASES whose greedy run has
# no near-tie (see generate_random) become cases, so a retrained model that
# happens to tie on one of them still gets its cases.
SHIPPED_GENERATE = [
    ([{"role": "user", "content": "What is 358 + 467?"}], 0),
    ([{"role": "user", "content": "Reverse the list: red, green, blue, yellow"}], 5),
    ([{"role": "user", "content": "Hello!"}], 1),
    ([{"role": "user", "content": "Sort these numbers: 42, 7, 19, 88, 3"}], 8),
    ([{"role": "user", "content": "What is 902 - 358?"}], 3),
    ([{"role": "user", "content": "What is your name?"}], 0),
]
SHIPPED_CASES = 3


def _save_checkpoint(folder, case, seed):
    hidden, heads, kv_heads, tie, theta = CHECKPOINTS[case]
    cfg = Qwen2Config(
        **BASE,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        tie_word_embeddings=tie,
        rope_parameters={"rope_type": "default", "rope_theta": theta},
        dtype="bfloat16",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg)
    w1d5._init(model, seed)
    model = model.to(torch.bfloat16).eval()
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    common.normalise_json_files(folder)


def _logprobs(logits):
    return torch.log_softmax(logits.to(torch.float32), dim=-1)


def _mask4(b, l, s):
    """A 4-D additive bottom-right causal mask for eager attention, or None for one row."""
    if l == 1:
        return None
    return torch.from_numpy(common.causal_mask(l, s))[None, None].expand(b, 1, l, s)


def attention(w, model, case, seed):
    cfg = model.config
    attn = model.model.layers[0].self_attn
    weights = {
        "wq": attn.q_proj.weight,
        "bq": attn.q_proj.bias,
        "wk": attn.k_proj.weight,
        "bk": attn.k_proj.bias,
        "wv": attn.v_proj.weight,
        "bv": attn.v_proj.bias,
        "wo": attn.o_proj.weight,
    }
    arrays = {k: v.detach().to(torch.float32).numpy().copy() for k, v in weights.items()}
    rng = np.random.default_rng(seed)
    b = 2
    cache = DynamicCache(config=cfg)
    offset = 0
    xs, outs = [], []
    for i, l in enumerate(ATTENTION_STEPS):
        x = rng.standard_normal((b, l, cfg.hidden_size)).astype(np.float32)
        xt = torch.from_numpy(x)
        pos = torch.arange(offset, offset + l)[None].expand(b, l)
        cos_sin = model.model.rotary_emb(xt, pos)
        mask = _mask4(b, l, offset + l)
        with torch.no_grad():
            out, _ = attn(xt, position_embeddings=cos_sin, attention_mask=mask, past_key_values=cache)
        assert cache.get_seq_length() == offset + l
        arrays[f"x{i}"] = x
        arrays[f"out{i}"] = out.numpy().astype(np.float32)
        if mask is not None:
            arrays[f"mask{i}"] = common.causal_mask(l, offset + l)
        xs.append(xt)
        outs.append(out)
        offset += l
    # The same positions in one call without a cache must agree.
    allx = torch.cat(xs, dim=1)
    pos = torch.arange(offset)[None].expand(b, offset)
    with torch.no_grad():
        full, _ = attn(allx, position_embeddings=model.model.rotary_emb(allx, pos), attention_mask=_mask4(b, offset, offset))
    diff = (full - torch.cat(outs, dim=1)).abs().max().item()
    assert diff < 1e-5, f"attention/{case}: cached and uncached HF attention differ by {diff}"
    w.case(
        DAY,
        "attention",
        case,
        seed,
        arrays,
        steps=ATTENTION_STEPS,
        hidden_size=cfg.hidden_size,
        num_heads=cfg.num_attention_heads,
        num_kv_heads=cfg.num_key_value_heads,
        rope_theta=cfg.rope_parameters["rope_theta"],
        max_position_embeddings=cfg.max_position_embeddings,
    )


def decode(w, model, case, model_dir, seed, prompt):
    """Prefill then DECODE_STEPS greedy single-token steps, all with one DynamicCache."""
    cache = DynamicCache(config=model.config)
    ids = torch.from_numpy(prompt)
    with torch.no_grad():
        out = model(input_ids=ids, past_key_values=cache, use_cache=True)
    prefill = _logprobs(out.logits)
    steps, fed = [], []
    nxt = out.logits[:, -1].argmax(-1)
    for _ in range(DECODE_STEPS):
        fed.append(nxt)
        with torch.no_grad():
            out = model(input_ids=nxt[:, None], past_key_values=cache, use_cache=True)
        steps.append(_logprobs(out.logits)[:, 0])
        nxt = out.logits[:, -1].argmax(-1)
    fed = torch.stack(fed, dim=1)
    steps = torch.stack(steps, dim=1)
    # Without a cache, on the whole sequence, the model must say the same.
    with torch.no_grad():
        full = _logprobs(model(input_ids=torch.cat([ids, fed], dim=1), use_cache=False).logits)
    p = prompt.shape[1]
    diff = max((full[:, :p] - prefill).abs().max().item(), (full[:, p:] - steps).abs().max().item())
    assert diff < 1e-4, f"decode/{case}: cached and uncached log-probs differ by {diff}"
    w.case(
        DAY,
        "decode",
        case,
        seed,
        {
            "prompt": prompt,
            "decode_tokens": fed.numpy().astype(np.int64),
            "logprobs_prefill": prefill.numpy(),
            "logprobs_decode": steps.numpy(),
        },
        model_dir=model_dir,
    )


def chunked(w, model, case, model_dir, seed, tokens):
    ids = torch.from_numpy(tokens)
    with torch.no_grad():
        whole = _logprobs(model(input_ids=ids, past_key_values=DynamicCache(config=model.config), use_cache=True).logits)
        cache = DynamicCache(config=model.config)
        parts, start = [], 0
        for n in CHUNKS:
            parts.append(_logprobs(model(input_ids=ids[:, start : start + n], past_key_values=cache, use_cache=True).logits))
            start += n
    diff = (torch.cat(parts, dim=1) - whole).abs().max().item()
    assert diff < 1e-4, f"chunked/{case}: HF chunked and one-shot prefill differ by {diff}"
    w.case(DAY, "chunked", case, seed, {"tokens": tokens, "logprobs": whole.numpy()}, model_dir=model_dir, chunks=CHUNKS)


def _greedy(model, prompt, max_new, eos):
    out = model.generate(
        input_ids=torch.from_numpy(prompt[None]),
        attention_mask=torch.ones((1, len(prompt)), dtype=torch.long),
        past_key_values=DynamicCache(config=model.config),
        use_cache=True,
        do_sample=False,
        max_new_tokens=max_new,
        eos_token_id=eos,
        pad_token_id=0,
        output_scores=True,
        return_dict_in_generate=True,
    )
    ids = out.sequences[0, len(prompt) :].numpy().astype(np.int64)
    gaps = [float(s[0].topk(2).values[0] - s[0].topk(2).values[1]) for s in out.scores]
    return ids, min(gaps)


def generate_random(w, model, case, model_dir, seed):
    """Greedy ids on a random checkpoint; prompts near a tie are redrawn (see w1d6.py)."""
    # No stop token unless a case asks for one: the saved generation config names id 1.
    model.generation_config.eos_token_id = None
    rng = np.random.default_rng(seed)
    made = 0
    while made < 2:
        length = 5 if made == 0 else 9
        prompt = rng.integers(0, model.config.vocab_size, size=length, dtype=np.int64)
        with torch.no_grad():
            ids, gap = _greedy(model, prompt, MAX_NEW, None)
        if gap < MIN_GAP:
            continue
        assert len(ids) == MAX_NEW
        chunk = 0 if made == 0 else 4
        w.case(DAY, "generate", f"{case}_prompt{length}", seed, {"prompt": prompt, "ids": ids},
               model_dir=model_dir, max_tokens=MAX_NEW, eos=[], prefill_chunk=chunk)
        if made == 0:
            eos = int(ids[3])
            with torch.no_grad():
                stopped, _ = _greedy(model, prompt, MAX_NEW, eos)
            assert stopped[-1] == eos and len(stopped) <= 4, stopped
            w.case(DAY, "generate", f"{case}_stops_on_eos", seed, {"prompt": prompt, "ids": stopped},
                   model_dir=model_dir, max_tokens=MAX_NEW, eos=[eos], prefill_chunk=2)
        made += 1


def shipped(w, seed):
    folder = os.path.join(REPO, SHIPPED)
    tok = AutoTokenizer.from_pretrained(folder)
    model = Qwen2ForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()

    def encode(msgs):
        text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return np.array(tok(text, add_special_tokens=False)["input_ids"], dtype=np.int64)

    prompt = encode(SHIPPED_DECODE)
    decode(w, model, "shipped", SHIPPED, seed, prompt[None])
    chunked(w, model, "shipped", SHIPPED, seed, prompt[None, : sum(CHUNKS)])
    eos = model.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos)
    made = 0
    for msgs, chunk in SHIPPED_GENERATE:
        if made == SHIPPED_CASES:
            break
        prompt = encode(msgs)
        with torch.no_grad():
            ids, gap = _greedy(model, prompt, SHIPPED_MAX_NEW, eos)
        if gap < MIN_GAP:
            continue
        w.case(DAY, "generate", f"shipped{made}", seed, {"prompt": prompt, "ids": ids},
               model_dir=SHIPPED, max_tokens=SHIPPED_MAX_NEW, eos=eos, prefill_chunk=chunk,
               messages=msgs, reply=tok.decode(ids, skip_special_tokens=True))
        made += 1
    assert made == SHIPPED_CASES, f"only {made} shipped conversations without a near-tie"


def generate(w):
    hf_logging.disable_progress_bar()
    torch.manual_seed(SEED)
    for i, case in enumerate(CHECKPOINTS):
        rel = f"{DAY}/checkpoints/{case}"
        folder = os.path.join(w.root, rel)
        seed = SEED + 10 * i
        _save_checkpoint(folder, case, seed)
        model = w1d5._load_f32(folder)
        model_dir = "testdata/" + rel
        attention(w, model, case, seed + 1)
        rng = np.random.default_rng(seed + 2)
        decode(w, model, case, model_dir, seed + 2, rng.integers(0, BASE["vocab_size"], size=(2, 5), dtype=np.int64))
        rng = np.random.default_rng(seed + 3)
        chunked(w, model, case, model_dir, seed + 3, rng.integers(0, BASE["vocab_size"], size=(2, sum(CHUNKS)), dtype=np.int64))
        generate_random(w, model, case, model_dir, seed + 4)
    shipped(w, SEED + 100)
    return {DAY: SEED}
