"""Helpers shared by every day's fixture generator.

A fixture set is a folder testdata/<day>/<task>/<case>/ holding one .npy file per
array and a meta.json with the case's parameters and seed. Everything written here
must be byte-for-byte reproducible: `make refgen-check` regenerates the whole tree
and diffs it against the committed one.
"""

import hashlib
import json
import os

import numpy as np

# The dtypes the Go side reads (github.com/sbinet/npyio plus our bool handling).
ALLOWED_DTYPES = {np.dtype("<f4"), np.dtype("<i8"), np.dtype("<u4"), np.dtype("bool")}


class Writer:
    """Writes fixture cases under one root and remembers what it wrote."""

    def __init__(self, root):
        self.root = root
        self.written = []

    def case(self, day, task, name, seed, arrays, **params):
        """Write one case: arrays is a dict name -> numpy array, params go to meta.json."""
        folder = os.path.join(self.root, day, task, name)
        os.makedirs(folder, exist_ok=True)
        for key, arr in sorted(arrays.items()):
            arr = np.ascontiguousarray(arr)
            if arr.dtype == np.float64:
                arr = arr.astype(np.float32)
            if arr.dtype not in ALLOWED_DTYPES:
                raise ValueError(f"{day}/{task}/{name}/{key}: dtype {arr.dtype} is not readable by the Go tests")
            path = os.path.join(folder, key + ".npy")
            np.save(path, arr, allow_pickle=False)
            self.written.append(path)
        meta = {"seed": seed, "params": params, "arrays": sorted(arrays)}
        path = os.path.join(folder, "meta.json")
        with open(path, "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
            f.write("\n")
        self.written.append(path)


def f32(rng, *shape, scale=1.0):
    """Standard normal float32 values (times scale), drawn from a NumPy generator."""
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def t64(a):
    """A float32 array as a float64 torch tensor: references run in float64."""
    import torch

    return torch.from_numpy(np.asarray(a, dtype=np.float32)).to(torch.float64)


def causal_mask(l, s):
    """Additive bottom-right aligned causal mask: row i sees columns <= i + s - l."""
    m = np.zeros((l, s), dtype=np.float32)
    for i in range(l):
        m[i, i + s - l + 1 :] = -np.inf
    return m


def normalise_json_files(folder):
    """Rewrite every .json file of folder with sorted keys and a trailing newline,
    so that a regeneration is byte-identical whatever order a library wrote them in."""
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            path = os.path.join(folder, name)
            with open(path) as f:
                data = json.load(f)
            with open(path, "w") as f:
                json.dump(data, f, indent=2, sort_keys=True)
                f.write("\n")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(root, versions, seeds):
    """MANIFEST.json lists every file under root (but itself) with its SHA-256."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            if rel == "MANIFEST.json":
                continue
            files[rel] = sha256(path)
    manifest = {
        "generator": "refgen/generate.py",
        "note": "Written by `make refgen`; verified by `make test`. Do not edit by hand.",
        "versions": versions,
        "seeds": seeds,
        "files": dict(sorted(files.items())),
    }
    with open(os.path.join(root, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    return len(files)
