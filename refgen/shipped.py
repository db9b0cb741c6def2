"""Fixtures for the shipped model (models/tinyqwen-chat): Hugging Face greedy ids.

For each conversation below, transformers renders the chat template with the
generation prompt, tokenizers encodes it, and `generate` (greedy, float32
compute from the bf16 weights, eager attention) answers it. The Go engine must
produce the same prompt ids and the same reply ids.
"""

import os

import numpy as np
import torch
from transformers import AutoTokenizer, Qwen2ForCausalLM

DAY = "shipped"
SEED = 1901
MAX_NEW = 48
MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "tinyqwen-chat")

CONVERSATIONS = [
    [{"role": "user", "content": "What is 358 + 467?"}],
    [{"role": "user", "content": "What is 902 - 358?"}],
    [{"role": "user", "content": "Reverse the list: red, green, blue, yellow"}],
    [{"role": "user", "content": "Sort these numbers: 42, 7, 19, 88, 3"}],
    [{"role": "user", "content": "How many times does the letter s appear in mississippi?"}],
    [{"role": "user", "content": "What is your name?"}],
    [{"role": "user", "content": "Hello!"}],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help you today?"},
        {"role": "user", "content": "What is 75 + 48?"},
    ],
    [{"role": "system", "content": "You are a concise assistant."}, {"role": "user", "content": "Count the letter e in committee."}],
    # A decomposed é (e + U+0301): NFC must compose it before tokenizing.
    [{"role": "user", "content": "Cafe\u0301 crème 👋! What is 12 + 30?"}],
]


def generate(w):
    tok = AutoTokenizer.from_pretrained(MODEL)
    model = Qwen2ForCausalLM.from_pretrained(MODEL, torch_dtype=torch.float32, attn_implementation="eager").eval()
    eos = model.generation_config.eos_token_id
    for i, msgs in enumerate(CONVERSATIONS):
        text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        prompt = np.array(tok(text, add_special_tokens=False)["input_ids"], dtype=np.int64)
        with torch.no_grad():
            out = model.generate(
                input_ids=torch.from_numpy(prompt[None]),
                attention_mask=torch.ones((1, len(prompt)), dtype=torch.long),
                do_sample=False,
                max_new_tokens=MAX_NEW,
                eos_token_id=eos,
                pad_token_id=eos[-1] if isinstance(eos, list) else eos,
            )
        ids = out[0, len(prompt) :].numpy().astype(np.int64)
        w.case(DAY, "greedy", f"case{i:02d}", SEED, {"prompt_ids": prompt, "ids": ids},
               messages=msgs, max_tokens=MAX_NEW, reply=tok.decode(ids, skip_special_tokens=True))
    return {DAY: SEED}
