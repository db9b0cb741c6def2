"""Regenerates every fixture under testdata/ from the independent references.

Usage (through the Makefile, which sets up the pinned virtual environment):
    make refgen          # rewrite testdata/
    make refgen-check    # regenerate into a temporary folder and diff with testdata/
"""

import argparse
import importlib.metadata
import os
import platform
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
import w1d1  # noqa: E402
import w1d2  # noqa: E402
import w1d3  # noqa: E402
import w1d4  # noqa: E402
import w1d5  # noqa: E402
import w1d6  # noqa: E402
import w1d7  # noqa: E402
import w2d1  # noqa: E402
import w2d2  # noqa: E402
import w2d3  # noqa: E402
import w2d6  # noqa: E402
import w3d1  # noqa: E402
import loader  # noqa: E402
import quantize  # noqa: E402
import shipped  # noqa: E402
import tokenizer as tokenizer_fixtures  # noqa: E402

# Each module writes one day's fixtures and returns {day: seed}. quantize
# comes after tokenizer_fixtures, whose tiny tokenizer its checkpoints use.
DAYS = [w1d1, w1d2, w1d3, w1d4, w1d5, w1d6, w1d7, w2d1, w2d2, w2d3, w2d6, w3d1, loader, shipped, tokenizer_fixtures, quantize]

PINNED = ["numpy", "torch", "transformers", "tokenizers", "safetensors", "mlx", "mlx-cpu", "mlx-lm"]


def versions():
    v = {"python": platform.python_version()}
    for name in PINNED:
        try:
            v[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            v[name] = "not installed"
    return v


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="testdata", help="fixture root to (re)write")
    args = parser.parse_args()

    # Start from an empty tree so that a removed case leaves no stale file behind.
    for day in DAYS:
        shutil.rmtree(os.path.join(args.out, day.DAY), ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)

    # Reference math runs single-threaded so results do not depend on the machine.
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    writer = common.Writer(args.out)
    seeds = {}
    for day in DAYS:
        seeds.update(day.generate(writer))
    n = common.write_manifest(args.out, versions(), seeds)
    print(f"refgen: wrote {len(writer.written)} files, manifest lists {n}")


if __name__ == "__main__":
    main()
