"""Trains the TinyQwen byte-level BPE tokenizer in the exact Qwen2 tokenizer.json format.

    python refgen/chatmodel/train_tokenizer.py --out models/tinyqwen-chat

Writes tokenizer.json and tokenizer_config.json into --out. The pipeline is the one of
the real Qwen2 tokenizer.json: NFC normalizer; pre-tokenizer Sequence[Split(Qwen2
regex, Isolated), ByteLevel(add_prefix_space=false, trim_offsets=false,
use_regex=false)]; BPE model with no unk token and no byte fallback (the 256-byte
alphabet is in the vocabulary); ByteLevel post-processor and decoder; the special
tokens <|endoftext|>, <|im_start|>, <|im_end|> added right after the regular vocab.
"""

import argparse
import json
import os
import random
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402

QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TOKENIZER_SEED = 11
BPE_VOCAB = 3069  # + 3 special tokens = 3072 ids
N_CONVERSATIONS = 60000


def training_texts(seed, n):
    """The rendered conversations split at the special tokens, so that no merge spans
    a special token's characters."""
    convs = corpus.conversations(seed, 0, n, corpus.TOKENIZER_WEIGHTS, lead_in_p=0)
    # The held-out and fixture prompts have no system message; render those too.
    rng = random.Random(seed + 1)
    for _ in range(n // 10):
        skill = rng.choice(corpus.SKILL_NAMES)
        q, _, _ = corpus.make(skill, rng)
        convs.append([{"role": "user", "content": q}])
    for conv in convs:
        text = corpus.render_chatml(conv, add_generation_prompt=True)
        for tok in SPECIAL_TOKENS:
            text = text.replace(tok, "\x00")
        for piece in text.split("\x00"):
            if piece:
                yield piece


def build(seed=TOKENIZER_SEED, vocab=BPE_VOCAB, n=N_CONVERSATIONS):
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(training_texts(seed, n), trainer=trainer)
    got = tok.get_vocab_size()
    if got != vocab:
        raise SystemExit(f"BPE vocabulary has {got} tokens, wanted {vocab}: feed more text")
    tok.add_special_tokens([
        AddedToken(t, single_word=False, lstrip=False, rstrip=False, normalized=False, special=True)
        for t in SPECIAL_TOKENS
    ])
    return tok


def tokenizer_config(tok):
    added = {}
    for t in SPECIAL_TOKENS:
        added[str(tok.token_to_id(t))] = {
            "content": t, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": True,
        }
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "chat_template": corpus.CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 512,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="models/tinyqwen-chat")
    p.add_argument("--seed", type=int, default=TOKENIZER_SEED)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    tok = build(args.seed)
    path = os.path.join(args.out, "tokenizer.json")
    tok.save(path, pretty=True)
    # Normalise the file layout to the key order of the real Qwen2 tokenizer.json.
    with open(path) as f:
        data = json.load(f)
    order = ["version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer",
             "post_processor", "decoder", "model"]
    data = {k: data[k] for k in order}
    # tokenizers writes the ByteLevel decoder with its default flags and the empty
    # affixes as null; Qwen2's file spells them as below (same behaviour).
    data["decoder"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    data["model"]["continuing_subword_prefix"] = ""
    data["model"]["end_of_word_suffix"] = ""
    with open(path, "w") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config(tok), f, indent=2, ensure_ascii=False)
        f.write("\n")
    tok = Tokenizer.from_file(path)
    corpus.selftest(tok)
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    print(f"tokenizer: {tok.get_vocab_size()} ids, special {ids}, wrote {path}")


if __name__ == "__main__":
    main()
