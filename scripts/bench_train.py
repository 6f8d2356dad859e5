"""Benchmark full training steps (forward, backward, clip, AdamW) of every preset at the experiment sizes.

For each preset and size (the MQAR and noisy_icr defaults, and MQAR at seq_len 256), cdyn-run's own
model, loss and optimiser take one step on a fresh batch; the step is timed (fastest of the repeats after a
warm-up), its matrix-multiply FLOPs are counted (mm, addmm, bmm, baddbmm, as dispatched; convolutions
are left out: torch.utils.flop_counter counts a depthwise convolution's backward as dense), and the
same matmuls, replayed alone at the same shapes, give the time the arithmetic needs (`floor ms`). A
profile of a few steps names the five ops with the most self time. The median step is reported beside
the fastest; what a whole run meets (fresh batches, schedule, bookkeeping) is scripts/bench_runs.py's.
The validation pass cdyn-run makes every train.eval_every steps is timed too, as a share of training
time. A digest of a few training steps from a fixed seed (the losses and the final parameters, bit for
bit) says whether two codes compute the same numbers.

With --baseline REV every cell is also measured on the code at git revision REV (checked out into a
temporary folder and imported from there), before and after in turn, so both come from one run of
the script under the same conditions.

    python scripts/bench_train.py --baseline HEAD~1      # writes results/bench/train.{csv,md}
    python scripts/bench_train.py --baseline HEAD~1 --presets softmax s6 --name train_s6   # a few presets
    python scripts/bench_train.py --baseline HEAD --digest-only   # does the working tree compute the same numbers?
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cdyn_bench.help import option_names
from cdyn_bench.revision import checkout

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "bench"
PRESETS = option_names("model")  # every preset of conf/model
SIZES = {
    "mqar": ("task=mqar",),
    "noisy_icr": ("task=noisy_icr", "task.num_train=0"),
    "mqar_256": ("task=mqar", "task.seq_len=256", "task.num_kv_pairs=16"),
}
MATMULS = ("mm", "addmm", "bmm", "baddbmm")


def matmul_flops(name: str, shapes: list[tuple[int, ...]]) -> int:
    """2 M N K (times the batch) of a dispatched matmul from its operand shapes."""
    a, b = shapes[-2], shapes[-1]
    if name in ("bmm", "baddbmm"):
        return 2 * a[0] * a[1] * a[2] * b[2]
    return 2 * a[0] * a[1] * b[1]


def record_matmuls(step) -> list[tuple[str, list[tuple[int, ...]]]]:
    """(op name, operand shapes) of every matmul one call of `step` dispatches, forward and backward."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    calls = []

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            if name in MATMULS:
                calls.append((name, [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]))
            return func(*args, **(kwargs or {}))

    with Recorder():
        step()
    return calls


def replay_seconds(calls, repeats: int = 5) -> float:
    """Fastest time of running the recorded matmuls alone, on random operands of the same shapes."""
    import torch

    ops = {"mm": torch.mm, "addmm": torch.addmm, "bmm": torch.bmm, "baddbmm": torch.baddbmm}
    operands = [(ops[name], [torch.randn(s) for s in shapes]) for name, shapes in calls]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for op, args in operands:
            op(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def top_ops(step, steps: int = 3, k: int = 5) -> str:
    """'op 31%, op 12%, ...': the k ops with the most self CPU time over a few steps."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return ", ".join(f"{e.key.removeprefix('aten::')} {100 * e.self_cpu_time_total / total:.0f}%" for e in events[:k])


def training_step(cfg, model, optimizer, inputs, targets):
    """One step of cdyn-run's training (loss, backward, clip, AdamW) on one batch; returns the loss."""
    import torch

    from cdyn_bench.train import loss_on

    loss = loss_on(model, inputs, targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
    optimizer.step()
    return loss


def setup(cfg):
    """(data, model, optimizer) of cdyn-run for cfg, from seed 0."""
    import torch

    from cdyn_bench.data import TaskData
    from cdyn_bench.model import LanguageModel
    from cdyn_bench.train import make_optimizer

    torch.manual_seed(0)
    data = TaskData(cfg.task, 0, cfg.train.batch_size)
    model = LanguageModel(cfg.model, data.vocab_size, readout=cfg.task.readout)
    return data, model, make_optimizer(model, cfg.train)


def numbers_digest(cfg, steps: int = 5) -> str:
    """sha256 (12 hex digits) of the losses of `steps` training steps from seed 0 on fresh batches and of
    the parameters after them, bit for bit: equal digests, same numbers."""
    import hashlib

    import torch

    from cdyn_bench.data import to_tensors

    data, model, optimizer = setup(cfg)
    digest = hashlib.sha256()
    for _ in range(steps):
        loss = training_step(cfg, model, optimizer, *to_tensors(*data.train_batch(), device=torch.device("cpu")))
        digest.update(loss.detach().numpy().tobytes())
    for param in model.parameters():
        digest.update(param.detach().numpy().tobytes())
    return digest.hexdigest()[:12]


def measure_cell(cfg, preset: str, size: str, budget_s: float, digest_only: bool = False) -> dict:
    """One config (row labels preset and size): step ms, tokens/s, matmul GFLOP, floor ms, eval share, top ops
    and the digest (with digest_only, the digest alone)."""
    import torch

    from cdyn_bench.data import to_tensors
    from cdyn_bench.train import evaluate

    digest = numbers_digest(cfg)
    if digest_only:
        return {"preset": preset, "size": size, "digest": digest}
    data, model, optimizer = setup(cfg)
    inputs, targets = to_tensors(*data.train_batch(), device=torch.device("cpu"))

    def step() -> None:
        training_step(cfg, model, optimizer, inputs, targets)

    for _ in range(3):
        step()
    times, start = [], time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < budget_s and len(times) < 50):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    # The fastest step: on a shared machine, interference only ever adds time; the median is what a run meets.
    seconds, median = min(times), sorted(times)[len(times) // 2]
    calls = record_matmuls(step)
    start = time.perf_counter()
    evaluate(model, data.val, cfg.train.eval_batch_size, torch.device("cpu"))
    eval_s = time.perf_counter() - start
    training_s = cfg.train.eval_every * seconds
    return {"preset": preset, "size": size, "batch": inputs.shape[0], "seq_len": inputs.shape[1],
            "ms_per_step": 1e3 * seconds, "median_ms": 1e3 * median, "tokens_per_s": inputs.numel() / seconds,
            "matmul_gflop": sum(matmul_flops(n, s) for n, s in calls) / 1e9,
            "floor_ms": 1e3 * replay_seconds(calls), "eval_pct": 100 * eval_s / (eval_s + training_s),
            "top_ops": top_ops(step), "digest": digest}


def over_softmax(df, column: str):
    """df[column] over softmax's value at the same size (rows with columns size, preset)."""
    softmax = df[df["preset"] == "softmax"].set_index("size")[column]
    return df[column] / df["size"].map(softmax)


def preset_report(path: Path, title: str, text: str, wide_title: str, wide, rows_title: str, rows) -> None:
    """A benchmark's markdown: its title and description, a presets x sizes table, and every row."""
    lines = [f"# {title}", "", text, "", f"## {wide_title}", "", wide.round(2).to_markdown(), "",
             f"## {rows_title}", "", rows.to_markdown(index=False), ""]
    path.write_text("\n".join(lines))


def configs(presets: list[str], sizes: list[str], records: list[str]):
    """(cfg, preset, size) of every preset at every size, or of every run record (result.json) as cdyn-run
    would train it, labelled by its folder name and 'record'."""
    try:
        from cdyn_bench.compose import compose, from_record
    except ImportError:  # a --baseline revision from before cdyn_bench.compose
        from cdyn_bench.config import compose, from_record

    if records:
        for path in records:
            yield from_record(json.loads(Path(path).read_text())["config"]), Path(path).parent.name, "record"
        return
    for size in sizes:
        for preset in presets:
            yield compose(f"model={preset}", *SIZES[size], "task.num_val=500", "wandb=disabled"), preset, size


def record_labels(records: list[str]) -> dict[str, str]:
    """Folder name -> 'key=value ...' over the config keys in which the records differ (the folder name when
    they do not)."""
    import pandas as pd

    configs = pd.json_normalize([json.loads(Path(r).read_text())["config"] for r in records])
    varied = [c for c in configs.columns if configs[c].astype(str).nunique() > 1]
    names = [Path(r).parent.name for r in records]
    if not varied:
        return {name: name for name in names}
    return {name: " ".join(f"{c.split('.')[-1]}={row[c]}" for c in varied)
            for name, (_, row) in zip(names, configs.iterrows())}


def measure(presets: list[str], sizes: list[str], threads: int, budget_s: float, digest_only: bool,
            records: list[str]) -> list[dict]:
    import torch

    torch.set_num_threads(threads)
    rows = []
    for cfg, preset, size in configs(presets, sizes, records):
        rows.append(measure_cell(cfg, preset, size, budget_s, digest_only))
        print(json.dumps(rows[-1] if digest_only else {k: rows[-1][k] for k in ("preset", "size", "ms_per_step")}),
              file=sys.stderr)
    return rows


def measure_in_subprocess(site: Path | None, args: argparse.Namespace) -> list[dict]:
    """Run `measure` in a fresh interpreter importing cdyn_bench from `site` (None: this checkout)."""
    env = dict(os.environ, **({"PYTHONPATH": str(site)} if site else {}))
    command = [sys.executable, __file__, "--worker", "--threads", str(args.threads), "--budget", str(args.budget),
               "--presets", *args.presets, "--sizes", *args.sizes] + (["--digest-only"] if args.digest_only else [])
    command += ["--records", *args.records] if args.records else []
    out = subprocess.run(command, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out)


def write(rows: list[dict], args: argparse.Namespace) -> None:
    import pandas as pd

    df = pd.DataFrame(rows)
    df["floor_pct"] = 100 * df["floor_ms"] / df["ms_per_step"]
    df.round(3).to_csv(OUT / f"{args.name}.csv", index=False)
    wide = df.pivot_table(index=["size", "preset"], columns="code", values="ms_per_step", sort=False)
    lines = [
        "# Training steps: every preset at the experiment sizes",
        "",
        f"One full step (forward, backward, clip, AdamW) of cdyn-run's model on a fresh batch, fp32, "
        f"{args.threads} threads, {platform.machine()}, fastest of the repeats (interference on a shared machine only adds time; `median_ms` the median repeat); `floor ms`: the step's matmuls "
        "alone at the same shapes; `eval %`: the validation pass every train.eval_every steps as a share "
        "of training time; `same numbers`: five training steps from seed 0 give bit-identical losses and "
        "parameters before and after. Produced by `scripts/bench_train.py"
        + (f" --baseline {args.baseline}" if args.baseline else "")
        + (f" --presets {' '.join(args.presets)}" if args.presets != PRESETS else "")
        + (f" --sizes {' '.join(args.sizes)}" if args.sizes != list(SIZES) else "")
        + (" --records " + " ".join(os.path.relpath(r, ROOT) for r in args.records) if args.records else "")
        + (f" --threads {args.threads}" if args.threads != 2 else "")
        + (f" --budget {args.budget:g}" if args.budget != 2.0 else "")
        + (f" --name {args.name}" if args.name != "train" else "") + "`"
        + (f"; before = {args.baseline}, after = this commit." if args.baseline else "."),
        "",
    ]
    if "before" in set(df["code"]):
        wide["after / before"] = wide["after"] / wide["before"]
        if "softmax" in set(df["preset"]):
            softmax = wide.xs("softmax", level="preset")
            for code in ("before", "after"):
                wide[f"{code} / softmax"] = wide[code] / softmax[code].reindex(wide.index.get_level_values("size")).values
        digests = df.pivot_table(index=["size", "preset"], columns="code", values="digest", aggfunc="first", sort=False)
        wide["same numbers"] = (digests["before"] == digests["after"]).map({True: "yes", False: "no"})
        lines += ["## ms per step, before and after", "", wide.round(2).to_markdown(), ""]
    for code, part in df.groupby("code", sort=False):
        shown = part[["size", "preset", "batch", "seq_len", "ms_per_step", "median_ms", "tokens_per_s", "matmul_gflop",
                      "floor_ms", "floor_pct", "eval_pct", "top_ops"]].round(2)
        lines += [f"## {code}", "", shown.to_markdown(index=False), ""]
    (OUT / f"{args.name}.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="git revision measured first, as 'before'")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of timed steps per cell")
    parser.add_argument("--presets", nargs="+", default=PRESETS)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES))
    parser.add_argument("--name", help="writes results/bench/NAME.{csv,md} (default: train; required with --records)")
    parser.add_argument("--digest-only", action="store_true",
                        help="only say, per cell, whether the baseline and this code compute the same numbers (no timing, "
                             "writes nothing; exit status 1 when some cell's differ)")
    parser.add_argument("--records", nargs="+", metavar="RESULT_JSON",
                        help="the configs of these run records instead of the presets (rows named by the keys in which they differ)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.records and not args.name and not (args.digest_only or args.worker):
        parser.error("--records needs --name: results/bench/train is the presets' benchmark")
    args.name = args.name or "train"
    args.records = [str(Path(r).resolve()) for r in args.records or []]
    if args.worker:
        print(json.dumps(measure(args.presets, args.sizes, args.threads, args.budget, args.digest_only, args.records)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        site = checkout(args.baseline, Path(tmp), ROOT) if args.baseline else None
        # Cell by cell, before and after in turn, so that a slow spell of the machine hits both alike.
        cells = ([argparse.Namespace(**{**vars(args), "records": [r]}) for r in args.records] if args.records else
                 [argparse.Namespace(**{**vars(args), "presets": [p], "sizes": [s]}) for s in args.sizes for p in args.presets])
        for cell in cells:
            if site is not None:
                rows += [{"code": "before", **r} for r in measure_in_subprocess(site, cell)]
            rows += [{"code": "after" if site else "current", **r} for r in measure_in_subprocess(None, cell)]
    if args.digest_only:
        import pandas as pd

        digests = pd.DataFrame(rows).pivot_table(index=["size", "preset"], columns="code", values="digest",
                                                 aggfunc="first", sort=False)
        if "before" in digests:
            digests["same numbers"] = digests["before"] == digests["after"]
        print(digests.to_markdown())
        # Exit status 1 when some cell's numbers changed, so that a script can stop on it.
        sys.exit(0 if "before" not in digests or digests["same numbers"].all() else 1)
    if args.records:
        labels = record_labels(args.records)
        rows = [{**row, "preset": labels[row["preset"]]} for row in rows]
    write(rows, args)


if __name__ == "__main__":
    main()
