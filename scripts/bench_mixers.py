"""Benchmark the mixer forms: forward+backward tokens/s of every preset's mixer in every form it can run.

At sequence lengths L in {128, 512, 2048} with batch * L fixed, one CoeffMixer layer of each preset
(conf/model/<preset>.yaml, d_model 64) runs forward and backward on random input; the matmul FLOPs of
one step are counted by torch.utils.flop_counter and the achieved GFLOP/s is set against the measured
fp32 matmul GFLOP/s of the machine. Cells whose quadratic coefficient tensors would exceed --max-gb are
skipped and recorded as such. Writes <out>/mixers.csv and <out>/mixers.md.

    python scripts/bench_mixers.py --threads 2
    python scripts/bench_mixers.py --device cuda      # writes mixers_cuda.{csv,md}
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import platform
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from cdyn_bench.compose import compose
from cdyn_bench.help import option_names
from cdyn_bench.mixer import CoeffMixer, MixerConfig

PRESETS = option_names("model")  # every preset of conf/model
FORMS = ["quadratic", "recurrent", "chunked"]
LENGTHS = [128, 512, 2048]


def preset_mixer(preset: str) -> tuple[int, MixerConfig]:
    """(d_model, mixer knobs) of a preset, composed as cdyn-run does."""
    cfg = compose(f"model={preset}")
    return cfg.model.d_model, cfg.model.mixer


def forms_of(mixer: MixerConfig) -> list[str]:
    return FORMS if mixer.phi == "identity" else ["quadratic"]


def quadratic_gb(mixer: MixerConfig, d_model: int, batch: int, L: int) -> float:
    """Rough peak memory of the materialised (B, H, L, L[, n]) tensors of the quadratic form (x4 for autograd)."""
    n = mixer.dims(d_model)[0]
    per_pair = n if mixer.A == "diag_gate" else 1
    return 4 * 4 * batch * mixer.n_heads * L * L * per_pair / 1e9


def step(mixer: CoeffMixer, u: torch.Tensor) -> None:
    u.grad = None
    mixer.zero_grad(set_to_none=True)
    mixer(u).square().mean().backward()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(mixer: CoeffMixer, u: torch.Tensor, budget_s: float, max_repeats: int) -> float:
    """Median seconds of one forward+backward after a warm-up, repeated within budget_s."""
    start = time.perf_counter()
    step(mixer, u)
    synchronize(u.device)
    first = time.perf_counter() - start
    times = []
    while len(times) < max_repeats and (not times or sum(times) + first < budget_s):
        start = time.perf_counter()
        step(mixer, u)
        synchronize(u.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def count_flops(mixer: CoeffMixer, u: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        step(mixer, u)
    return counter.get_total_flops()


def matmul_gflops(device: torch.device, size: int = 1024, repeats: int = 10) -> float:
    """Measured fp32 GFLOP/s of a square matrix product."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def bench_cell(preset: str, form: str, L: int, tokens: int, max_gb: float, budget_s: float,
               device: torch.device) -> dict:
    d_model, knobs = preset_mixer(preset)
    batch = max(1, tokens // L)
    row = {"preset": preset, "form": form, "L": L, "batch": batch}
    if form == "quadratic" and quadratic_gb(knobs, d_model, batch, L) > max_gb:
        return row | {"status": f"skipped: quadratic needs ~{quadratic_gb(knobs, d_model, batch, L):.0f} GB"}
    torch.manual_seed(0)
    mixer = CoeffMixer(d_model, dataclasses.replace(knobs, form=form)).to(device)
    u = torch.randn(batch, L, d_model, device=device, requires_grad=True)
    seconds = time_step(mixer, u, budget_s, max_repeats=1 if form == "recurrent" and L > 512 else 5)
    flops = count_flops(mixer, u)
    gc.collect()
    return row | {"status": "ok", "ms_per_step": 1e3 * seconds, "tokens_per_s": batch * L / seconds,
                  "us_per_token": 1e6 * seconds / (batch * L), "gflop_per_step": flops / 1e9,
                  "gflops": flops / seconds / 1e9}


def device_name(args: argparse.Namespace) -> str:
    if args.device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(args.device))
    return f"{args.threads} threads, {platform.processor() or platform.machine()}"


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per linear-phi preset: chunked speed-up over quadratic at the longest L, and chunked time/token growth."""
    ok = df[df.status == "ok"].set_index(["preset", "form", "L"])["us_per_token"]
    rows = []
    for preset in df.preset.unique():
        if (preset, "chunked", LENGTHS[-1]) not in ok:
            continue
        chunked = ok[(preset, "chunked", LENGTHS[-1])]
        quad = ok.get((preset, "quadratic", LENGTHS[-1]))
        rows.append({"preset": preset, f"chunked us/token L={LENGTHS[-1]}": round(chunked, 2),
                     f"quadratic / chunked L={LENGTHS[-1]}": "quadratic skipped" if quad is None else round(quad / chunked, 1),
                     f"chunked growth L={LENGTHS[1]}->{LENGTHS[-1]}": round(chunked / ok[(preset, "chunked", LENGTHS[1])], 2)})
    return pd.DataFrame(rows)


def write_markdown(df: pd.DataFrame, peak: float, args: argparse.Namespace, path: Path) -> None:
    table = df.pivot_table(index=["preset", "form"], columns="L", values="tokens_per_s", sort=False).round(0)
    table.columns = [f"tokens/s L={L}" for L in table.columns]
    long = df[df.L == LENGTHS[-1]].set_index(["preset", "form"])
    table[f"GFLOP/s L={LENGTHS[-1]}"] = long["gflops"].round(2)
    table[f"% of matmul L={LENGTHS[-1]}"] = (100 * long["gflops"] / peak).round(1)
    skipped = df[df.status != "ok"][["preset", "form", "L", "status"]]
    lines = [
        "# Mixer forms: forward+backward throughput", "",
        f"One CoeffMixer layer per preset (d_model 64), batch x L = {args.tokens} tokens, fp32, "
        f"{device_name(args)}, torch {torch.__version__}. "
        f"Matmul FLOPs counted by torch.utils.flop_counter (elementwise work not counted, the short convolution "
        f"included: it runs as shifted multiply-adds since numerics version 3); "
        f"measured fp32 matmul peak {peak:.1f} GFLOP/s. Produced by `scripts/bench_mixers.py`.", "",
        "## Chunked against quadratic", "", summary(df).to_markdown(index=False), "",
        "## Tokens per second", "", table.reset_index().to_markdown(index=False), "",
    ]
    if len(skipped):
        lines += ["## Not run", "", skipped.to_markdown(index=False), ""]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=4096, help="batch * L, the same at every L")
    parser.add_argument("--max-gb", type=float, default=6.0)
    parser.add_argument("--budget-s", type=float, default=3.0, help="timing budget per cell after warm-up")
    parser.add_argument("--presets", nargs="*", default=PRESETS)
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    peak = matmul_gflops(device)
    rows = []
    for preset in args.presets:
        for form in forms_of(preset_mixer(preset)[1]):
            for L in LENGTHS:
                rows.append(bench_cell(preset, form, L, args.tokens, args.max_gb, args.budget_s, device))
                print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    df["matmul_gflops"] = peak
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "mixers" if device.type == "cpu" else f"mixers_{device.type}"
    df.to_csv(args.out / f"{stem}.csv", index=False)
    write_markdown(df, peak, args, args.out / f"{stem}.md")
    print(summary(df).to_string(index=False))


if __name__ == "__main__":
    main()
