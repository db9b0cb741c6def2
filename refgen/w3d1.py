"""W3D1 fixtures: continuous batching, checked request by request.

Four requests join a batch at different steps and decode together: the Go
model runs them in one batched call per step, and every request's logits must
be those it gets alone. Here each request is run alone through Hugging Face
transformers (float32, eager attention, its own `DynamicCache`), fed exactly
the pieces the batch feeds it: its prompt (in one call, or in two for the
request whose prefill is chunked next to the others' decode steps), then one
token per step, the greedy choice of the step before.

PLAN says when each request joins, how its prompt is cut and how many decode
steps it takes; `steps` in each case's meta.json is the resulting schedule,
step by step, as [request, new tokens] pairs in the order the batch lists
them. The order rotates from step to step, so a row of the batch is not the
request's number.

- batch: the whole model on two random checkpoints (W2D1's shapes, `tied`
  with 4 query heads sharing 2 key/value heads, `untied` with 6 sharing 2 and
  a separate lm_head; weights of their own seed) and on the shipped chat
  model (models/tinyqwen-chat, read from the repository): each request's
  tokens and the log-probs of the last position of each of its calls;
- attention: layer 0's Qwen2Attention of each random checkpoint, with random
  hidden states per request, the output for every position.

Each request's cached, piece-by-piece result is checked here against the
same model run without a cache on the whole sequence, so a fixture cannot
encode a cache bug of the reference itself.
"""

import os

import numpy as np
import torch
from transformers import AutoTokenizer, DynamicCache, Qwen2ForCausalLM
from transformers.utils import logging as hf_logging

import w1d5
import w2d1

DAY = "w3d1"
SEED = 3001
REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SHIPPED = "models/tinyqwen-chat"

# Per request: (the step it joins at, the pieces its prompt is fed in, the
# number of decode steps). None is "the rest of the prompt".
PLAN = [
    (0, [None], 6),
    (1, [None], 7),
    (2, [4, None], 5),
    (4, [None], 4),
]
RANDOM_PROMPT_LENGTHS = [5, 3, 9, 6]
SHIPPED_PROMPTS = [
    [{"role": "user", "content": "What is 12 + 30?"}],
    [{"role": "user", "content": "Hello!"}],
    [{"role": "user", "content": "Reverse the list: red, green, blue, yellow"}],
    [{"role": "user", "content": "Sort these numbers: 42, 7, 19, 88, 3"}],
]


def _calls(r, prompt_len):
    """The new-token counts of request r's calls, prefill pieces then decodes."""
    _, pieces, decodes = PLAN[r]
    sizes, used = [], 0
    for p in pieces:
        n = prompt_len - used if p is None else p
        assert 0 < n and used + n <= prompt_len, (r, pieces, prompt_len)
        sizes.append(n)
        used += n
    assert used == prompt_len, (r, pieces, prompt_len)
    return sizes + [1] * decodes


def schedule(calls):
    """The steps: each a list of [request, new tokens], in the batch's order."""
    steps, k = [], [0] * len(calls)
    s = 0
    while any(k[r] < len(calls[r]) for r in range(len(calls))):
        active = [r for r in range(len(calls)) if PLAN[r][0] <= s and k[r] < len(calls[r])]
        if active:
            rot = s % len(active)
            active = active[rot:] + active[:rot]
        step = []
        for r in active:
            step.append([r, calls[r][k[r]]])
            k[r] += 1
        steps.append(step)
        s += 1
    return steps


def _logprobs(logits):
    return torch.log_softmax(logits.to(torch.float32), dim=-1)


def alone(model, prompt, calls):
    """Runs one request alone, call by call: its tokens and last-position log-probs."""
    cache = DynamicCache(config=model.config)
    tokens = list(int(t) for t in prompt)
    rows, pos = [], 0
    for i, n in enumerate(calls):
        ids = torch.tensor([tokens[pos : pos + n]], dtype=torch.long)
        with torch.no_grad():
            out = model(input_ids=ids, past_key_values=cache, use_cache=True)
        pos += n
        assert cache.get_seq_length() == pos
        rows.append(_logprobs(out.logits[0, -1]))
        if i + 1 < len(calls):
            assert calls[i + 1] == 1 or pos < len(prompt)
            if pos == len(tokens):
                tokens.append(int(out.logits[0, -1].argmax()))
    assert pos == len(tokens)
    rows = torch.stack(rows)
    # The whole sequence in one call, without a cache, must say the same at
    # the last position of every piece.
    with torch.no_grad():
        full = _logprobs(model(input_ids=torch.tensor([tokens]), use_cache=False).logits[0])
    ends = np.cumsum(calls) - 1
    diff = (full[ends] - rows).abs().max().item()
    assert diff < 1e-4, f"cached and uncached log-probs differ by {diff}"
    return np.array(tokens, dtype=np.int64), rows.numpy()


def batch(w, model, case, model_dir, seed, prompts):
    calls = [_calls(r, len(p)) for r, p in enumerate(prompts)]
    arrays = {}
    for r, p in enumerate(prompts):
        tokens, rows = alone(model, p, calls[r])
        arrays[f"tokens{r}"] = tokens
        arrays[f"logprobs{r}"] = rows
    w.case(DAY, "batch", case, seed, arrays, model_dir=model_dir, requests=len(prompts),
           prompt_lengths=[len(p) for p in prompts], steps=schedule(calls))


def attention(w, model, case, model_dir, seed):
    """Layer 0's attention alone per request, on random hidden states."""
    cfg = model.config
    attn = model.model.layers[0].self_attn
    rng = np.random.default_rng(seed)
    calls = [_calls(r, n) for r, n in enumerate(RANDOM_PROMPT_LENGTHS)]
    arrays = {}
    for r, cs in enumerate(calls):
        total = sum(cs)
        x = rng.standard_normal((1, total, cfg.hidden_size)).astype(np.float32)
        xt = torch.from_numpy(x)
        cache = DynamicCache(config=cfg)
        outs, pos = [], 0
        for n in cs:
            piece = xt[:, pos : pos + n]
            at = torch.arange(pos, pos + n)[None]
            with torch.no_grad():
                out, _ = attn(piece, position_embeddings=model.model.rotary_emb(piece, at),
                              attention_mask=w2d1._mask4(1, n, pos + n), past_key_values=cache)
            outs.append(out)
            pos += n
        out = torch.cat(outs, dim=1)
        with torch.no_grad():
            full, _ = attn(xt, position_embeddings=model.model.rotary_emb(xt, torch.arange(total)[None]),
                           attention_mask=w2d1._mask4(1, total, total))
        diff = (full - out).abs().max().item()
        assert diff < 1e-5, f"attention/{case}: cached and uncached HF attention differ by {diff}"
        arrays[f"x{r}"] = x[0]
        arrays[f"out{r}"] = out[0].numpy().astype(np.float32)
    w.case(DAY, "attention", case, seed, arrays, model_dir=model_dir, requests=len(calls),
           prompt_lengths=RANDOM_PROMPT_LENGTHS, steps=schedule(calls),
           hidden_size=cfg.hidden_size, num_heads=cfg.num_attention_heads, num_kv_heads=cfg.num_key_value_heads)


def shipped(w, seed):
    folder = os.path.join(REPO, SHIPPED)
    tok = AutoTokenizer.from_pretrained(folder)
    model = Qwen2ForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    prompts = []
    for msgs in SHIPPED_PROMPTS:
        text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        prompts.append(np.array(tok(text, add_special_tokens=False)["input_ids"], dtype=np.int64))
    batch(w, model, "shipped", SHIPPED, seed, prompts)


def generate(w):
    hf_logging.disable_progress_bar()
    torch.manual_seed(SEED)
    for i, case in enumerate(w2d1.CHECKPOINTS):
        rel = f"{DAY}/checkpoints/{case}"
        seed = SEED + 10 * i
        w2d1._save_checkpoint(os.path.join(w.root, rel), case, seed)
        model = w1d5._load_f32(os.path.join(w.root, rel))
        rng = np.random.default_rng(seed + 1)
        prompts = [rng.integers(0, model.config.vocab_size, size=n, dtype=np.int64) for n in RANDOM_PROMPT_LENGTHS]
        batch(w, model, case, "testdata/" + rel, seed + 1, prompts)
        attention(w, model, case, "testdata/" + rel, seed + 2)
    shipped(w, SEED + 100)
    return {DAY: SEED}
