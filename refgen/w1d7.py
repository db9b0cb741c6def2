"""W1D7 fixtures: sampling candidate sets.

For fixed logits, Hugging Face's logits processors (temperature, then top-k,
then top-p, the order `generate` applies them) decide which tokens stay
sampleable; the fixture stores that set and the renormalised probabilities.
"""

import numpy as np
import torch
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

DAY = "w1d7"
SEED = 1701


def generate(w):
    rng = np.random.default_rng(SEED)
    logits = (rng.standard_normal(50) * 2.0).astype(np.float32)
    cases = [
        # name, temperature, top_k, top_p
        ("top_k_5", 1.0, 5, 1.0),
        ("top_k_1", 1.0, 1, 1.0),
        ("top_p_0.5", 1.0, 0, 0.5),
        ("top_p_0.9_temp_0.7", 0.7, 0, 0.9),
        ("top_k_10_top_p_0.8", 1.0, 10, 0.8),
        ("temp_1.5_all", 1.5, 0, 1.0),
        ("top_p_tiny", 1.0, 0, 1e-6),
    ]
    for i, (name, temp, k, p) in enumerate(cases):
        x = torch.from_numpy(logits)[None].to(torch.float64)
        logprobs = torch.log_softmax(x, dim=-1)
        scores = logprobs.clone()
        scores = TemperatureLogitsWarper(temp)(None, scores)
        if k > 0:
            scores = TopKLogitsWarper(top_k=k)(None, scores)
        if p < 1.0:
            scores = TopPLogitsWarper(top_p=p)(None, scores)
        keep = torch.isfinite(scores[0]).numpy()
        probs = torch.softmax(scores[0], dim=-1).numpy()
        ids = np.nonzero(keep)[0].astype(np.int64)
        w.case(
            DAY, "candidates", name, SEED + i,
            {"logprobs": logprobs[0].numpy(), "ids": ids, "probs": probs[ids]},
            temperature=temp, top_k=k, top_p=p,
        )
    return {DAY: SEED}
