"""W1D6 fixtures: greedy generation without a KV cache.

Hugging Face `generate` (greedy, float32 compute) runs on the two W1D5 random
checkpoints, which w1d5.py writes first. For each prompt the ids it generates
are stored; one case per checkpoint also stops on an EOS id (the fourth token of
the free run, so the stop is certain to happen). Prompts whose greedy choices
are too close to a tie (top-2 logit gap < 1e-3 at any step) are redrawn: the Go
model's float32 rounding may legitimately break such a tie the other way.
"""

import os

import numpy as np
import torch
from transformers import Qwen2ForCausalLM

DAY = "w1d6"
SEED = 1601
MAX_NEW = 12
MIN_GAP = 1e-3


def _greedy(model, prompt, eos=None):
    out = model.generate(
        input_ids=torch.from_numpy(prompt[None]),
        attention_mask=torch.ones((1, len(prompt)), dtype=torch.long),
        do_sample=False,
        max_new_tokens=MAX_NEW,
        eos_token_id=eos,
        pad_token_id=0,
        output_scores=True,
        return_dict_in_generate=True,
    )
    ids = out.sequences[0, len(prompt) :].numpy().astype(np.int64)
    gaps = [float((s[0].topk(2).values[0] - s[0].topk(2).values[1])) for s in out.scores]
    return ids, min(gaps)


def generate(w):
    for ci, case in enumerate(["tied", "untied"]):
        rel = f"w1d5/checkpoints/{case}"
        model = Qwen2ForCausalLM.from_pretrained(
            os.path.join(w.root, rel), torch_dtype=torch.float32, attn_implementation="eager"
        ).eval()
        rng = np.random.default_rng(SEED + ci)
        made = 0
        while made < 2:
            length = 5 if made == 0 else 9
            prompt = rng.integers(0, model.config.vocab_size, size=length, dtype=np.int64)
            with torch.no_grad():
                ids, gap = _greedy(model, prompt)
            if gap < MIN_GAP:
                continue
            w.case(DAY, "generate", f"{case}_prompt{length}", SEED + ci, {"prompt": prompt, "ids": ids},
                   checkpoint=rel, max_tokens=MAX_NEW, eos=-1)
            if made == 0:
                eos = int(ids[3])
                with torch.no_grad():
                    stopped, _ = _greedy(model, prompt, eos=eos)
                assert stopped[-1] == eos and len(stopped) <= 4, stopped
                w.case(DAY, "generate", f"{case}_stops_on_eos", SEED + ci, {"prompt": prompt, "ids": stopped},
                       checkpoint=rel, max_tokens=MAX_NEW, eos=eos)
            made += 1
    return {DAY: SEED}
