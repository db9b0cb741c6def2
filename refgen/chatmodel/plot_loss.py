"""Plots the training loss of train_log.csv into the model card's loss.png.

    python refgen/chatmodel/plot_loss.py --log refgen/chatmodel/train_log.csv --out models/tinyqwen-chat/loss.png
"""

import argparse
import csv
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--log", default="refgen/chatmodel/train_log.csv")
    p.add_argument("--meta", default="refgen/chatmodel/train_meta.json", help="for the batch size")
    p.add_argument("--out", default="models/tinyqwen-chat/loss.png")
    args = p.parse_args()
    batch = json.load(open(args.meta))["args"]["batch_size"]
    rows = list(csv.DictReader(open(args.log)))
    steps = [int(r["step"]) for r in rows]
    loss = [float(r["loss"]) for r in rows]
    lr = [float(r["lr"]) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(steps, loss, color="tab:blue", linewidth=1.5, label="training loss (assistant tokens)")
    ax.set_yscale("log")
    ax.set_xlabel(f"step ({batch} conversations each)")
    ax.set_ylabel("cross-entropy (nats/token), log scale")
    ax.grid(True, which="both", alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(steps, lr, color="tab:orange", linewidth=1, alpha=0.7, label="learning rate")
    ax2.set_ylabel("learning rate")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper right")
    ax.set_title(f"TinyQwen training: final loss {loss[-1]:.4f} after {steps[-1]} steps")
    fig.tight_layout()
    fig.savefig(args.out, metadata={"Software": None})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
