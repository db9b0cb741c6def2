"""Writes a Hugging Face Qwen2 checkpoint (the random one of `tinyllm mkmodel`)
as a GGUF file, so that llama.cpp can run the same weights in bench-compare.

    python refgen/bench/to_gguf.py --model DIR --out FILE.gguf --type f16|q8_0|q4_0

The file is written with the `gguf` package (pinned in
refgen/bench/requirements.txt), which names the tensors and metadata keys.
Matrices take the requested type; norms and biases stay float32, as GGUF
keeps one-dimensional tensors. The tokenizer's vocabulary is padded with
unused entries to the model's vocab_size, so every prompt id of the
benchmark is a valid token.
"""

import argparse
import json
import os
import sys

import numpy as np

TYPES = {"f16": ("F16", "MOSTLY_F16"), "q8_0": ("Q8_0", "MOSTLY_Q8_0"), "q4_0": ("Q4_0", "MOSTLY_Q4_0")}


def load_tensors(model_dir):
    """Every tensor of the checkpoint as float32 numpy, by Hugging Face name."""
    import torch  # reads bf16, which numpy cannot
    from safetensors.torch import load_file

    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for name in files:
        for k, v in load_file(os.path.join(model_dir, name)).items():
            out[k] = v.to(torch.float32).numpy()
    return out


def vocabulary(model_dir, vocab_size):
    """Tokens, token types and merges from tokenizer.json, padded to vocab_size."""
    import gguf

    with open(os.path.join(model_dir, "tokenizer.json")) as f:
        tok = json.load(f)
    by_id = {i: t for t, i in tok["model"]["vocab"].items()}
    special = {}
    for t in tok.get("added_tokens", []):
        by_id[t["id"]] = t["content"]
        if t.get("special"):
            special[t["id"]] = True
    tokens, types = [], []
    for i in range(vocab_size):
        if i in by_id:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"].get("merges", [])]
    return tokens, types, merges


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="Hugging Face Qwen2 folder")
    p.add_argument("--out", required=True, help="GGUF file to write")
    p.add_argument("--type", choices=sorted(TYPES), default="f16")
    args = p.parse_args()

    import gguf

    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    if cfg.get("model_type") != "qwen2":
        sys.exit(f"to_gguf: {args.model} holds a {cfg.get('model_type')!r} model, not qwen2")
    qname, ftype = TYPES[args.type]
    qtype = getattr(gguf.GGMLQuantizationType, qname)
    n_layers = cfg["num_hidden_layers"]
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, n_layers)

    tmp = args.out + ".partial"
    w = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.QWEN2])
    w.add_name(os.path.basename(os.path.normpath(args.model)))
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(n_layers)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_freq_base(float(cfg["rope_theta"]))
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    w.add_file_type(getattr(gguf.LlamaFileType, ftype))
    tokens, types, merges = vocabulary(args.model, cfg["vocab_size"])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    if cfg.get("bos_token_id") is not None:
        w.add_bos_token_id(cfg["bos_token_id"])
    if cfg.get("eos_token_id") is not None:
        eos = cfg["eos_token_id"]
        w.add_eos_token_id(eos[0] if isinstance(eos, list) else eos)

    for hf_name, data in load_tensors(args.model).items():
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            sys.exit(f"to_gguf: no GGUF name for tensor {hf_name}")
        if data.ndim == 1:
            w.add_tensor(name, data.astype(np.float32))
        else:
            w.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
