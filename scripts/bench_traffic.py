"""How many bytes a training step moves, beside its matmul FLOPs: every preset at the experiment sizes.

A step that is slow for its arithmetic is slow for its memory traffic. This counts, for one training step of
cdyn-run's model (forward, backward, clip, AdamW; bench_train's SIZES and step), the bytes of every tensor each
dispatched op reads and writes (views, which move nothing, left out): a machine-independent count, the same on
every run, of the traffic a step asks for if each op streams its operands once (a lower bound for matmuls,
which may read an operand more than once, and an upper bound where a cache holds a small operand). Beside it,
the matmul GFLOP (bench_train.matmul_flops; a fused attention kernel's own products are not among them, as in
bench_train) and the three ops that move the most. Ratios are to softmax at the
same size: a preset whose traffic ratio is far above its FLOP ratio is memory-bound where softmax is not.

    python scripts/bench_traffic.py                 # writes results/bench/traffic.{csv,md}
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import MATMULS, OUT, PRESETS, SIZES, matmul_flops, over_softmax, preset_report, setup, training_step  # noqa: E402,E501

from cdyn_bench.compose import compose  # noqa: E402
from cdyn_bench.data import to_tensors  # noqa: E402


def tensor_bytes(values) -> int:
    flat = values if isinstance(values, (list, tuple)) else [values]
    total = 0
    for value in flat:
        if isinstance(value, torch.Tensor):
            total += value.numel() * value.element_size()
        elif isinstance(value, (list, tuple)):
            total += tensor_bytes(value)
    return total


def aliases(func, args, out) -> bool:
    """Whether an op only makes a view: declared one, or (_unsafe_view and the like) an output that shares an
    input's storage without the op writing in place."""
    if func.is_view:
        return True
    if func._schema.is_mutable or not isinstance(out, torch.Tensor):
        return False
    storages = {a.untyped_storage().data_ptr() for a in args if isinstance(a, torch.Tensor)}
    return out.untyped_storage().data_ptr() in storages


class Traffic(TorchDispatchMode):
    """Bytes read and written per op name, and the matmuls' FLOPs, of everything dispatched inside it."""

    def __init__(self):
        super().__init__()
        self.moved, self.flops = Counter(), 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if not aliases(func, args, out):
            self.moved[name] += tensor_bytes(list(args) + list((kwargs or {}).values())) + tensor_bytes(out)
        if name in MATMULS:
            self.flops += matmul_flops(name, [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)])
        return out


def measure(preset: str, size: str) -> dict:
    cfg = compose(f"model={preset}", *SIZES[size], "task.num_val=500", "wandb=disabled")
    data, model, optimizer = setup(cfg)
    inputs, targets = to_tensors(*data.train_batch(), device=torch.device("cpu"))
    training_step(cfg, model, optimizer, inputs, targets)  # AdamW's state exists from the first step on
    with Traffic() as traffic:
        training_step(cfg, model, optimizer, inputs, targets)
    total = sum(traffic.moved.values())
    top = ", ".join(f"{name} {100 * b / total:.0f}%" for name, b in traffic.moved.most_common(3))
    return {"size": size, "preset": preset, "moved_gb": total / 1e9, "matmul_gflop": traffic.flops / 1e9,
            "flop_per_byte": traffic.flops / total, "top_ops": top}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=PRESETS, choices=PRESETS)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--name", default="traffic", help="writes results/bench/NAME.{csv,md}")
    args = parser.parse_args()
    if "softmax" not in args.presets:
        parser.error("--presets must include softmax (the ratios are to it)")
    torch.set_num_threads(1)
    rows = [measure(p, s) for s in args.sizes for p in args.presets]
    df = pd.DataFrame(rows)
    df["traffic / softmax"], df["flops / softmax"] = over_softmax(df, "moved_gb"), over_softmax(df, "matmul_gflop")
    OUT.mkdir(parents=True, exist_ok=True)
    df.round(4).to_csv(OUT / f"{args.name}.csv", index=False)
    wide = df.pivot(index="preset", columns="size", values="traffic / softmax")[list(dict.fromkeys(df["size"]))]
    text = ("One training step (forward, backward, clip, AdamW) of cdyn-run's model at each size, fp32: `moved_gb` the "
            "bytes every dispatched op reads and writes (views left out), `matmul_gflop` its matmuls' FLOPs, "
            "`flop_per_byte` their ratio, `top_ops` the ops that move the most. Counts, not timings: the same on any "
            "machine. Produced by `python " + " ".join(["scripts/bench_traffic.py", *sys.argv[1:]]) + "`.")
    rows = df.round({"moved_gb": 3, "matmul_gflop": 3, "flop_per_byte": 2, "traffic / softmax": 2, "flops / softmax": 2})
    preset_report(OUT / f"{args.name}.md", "Bytes a training step moves, and its matmul FLOPs", text,
                  "Traffic over softmax's", wide, "Every cell", rows)
    print(f"wrote {OUT / args.name}.csv and .md", file=sys.stderr)


if __name__ == "__main__":
    main()
