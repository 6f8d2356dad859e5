"""Coefficient maps: alpha_ij of a run's mixers on one sequence of its task, at initialisation and trained.

Rows are queries i, columns past tokens j; a strip along each axis colours every position by its
role in the task (key, value, noise, query, filler: tasks.roles), so a reader sees at a glance
whether a model ignores the noise and finds the right key. From the weights a run with
train.save_weights wrote (record.WEIGHTS); the coefficients come from the mixer's own introspection.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cdyn_bench.compose import from_record
from cdyn_bench.data import TaskData, to_tensors
from cdyn_bench.mixer.evolutions import evolution
from cdyn_bench.mixer.introspect import inspect_model
from cdyn_bench.model import LanguageModel
from cdyn_bench.record import RESULT, WEIGHTS, read_result
from cdyn_bench.tasks.roles import DEFINED, ROLES, token_roles

ROLE_COLOURS = {"key": "tab:blue", "value": "tab:green", "noise": "tab:grey", "query": "tab:red", "filler": "white",
                "token": "tab:purple"}


def coefficient_maps(record_path: Path, example: int = 0) -> tuple[dict[str, list[np.ndarray]], list[str], dict]:
    """({'init': [alpha (H, T, T) per layer], 'trained': [...]}, the role of each position, the run config)."""
    result = read_result(record_path)
    cfg = from_record(result.config)
    data = TaskData(cfg.task, cfg.seed, cfg.train.batch_size)
    inputs, targets = data.test.inputs[example:example + 1], data.test.targets[example:example + 1]
    if cfg.task.name in DEFINED:
        roles = [ROLES[r] for r in token_roles(cfg.task.name, cfg.task.params, inputs, targets)[0]]
    else:
        roles = ["query" if t != -100 else "token" for t in targets[0]]
    model = LanguageModel(cfg.model, data.vocab_size, readout=cfg.task.readout)
    tokens = to_tensors(inputs, device=torch.device("cpu"))[0]
    maps = {}
    for when, name in WEIGHTS.items():
        model.load_state_dict(torch.load(Path(record_path).parent / name, weights_only=True))
        maps[when] = [seen["alpha"][0].numpy() for seen in inspect_model(model.eval(), tokens)]
    return maps, roles, result.config


def role_strip(ax, roles: list[str], vertical: bool) -> None:
    from matplotlib.colors import ListedColormap

    names = list(ROLE_COLOURS)
    codes = np.array([names.index(r) for r in roles])
    codes = codes[:, None] if vertical else codes[None, :]
    ax.imshow(codes, cmap=ListedColormap(list(ROLE_COLOURS.values())), vmin=0, vmax=len(names) - 1, aspect="auto")
    ax.set_xticks([])
    ax.set_yticks([])


def figure(maps: dict[str, list[np.ndarray]], roles: list[str], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    panels = [(layer, head) for layer, alpha in enumerate(maps["trained"]) for head in range(alpha.shape[0])]
    fig = plt.figure(figsize=(9, 4.2 * len(panels)), layout="constrained")
    grid = fig.add_gridspec(len(panels), 2)
    for row, (layer, head) in enumerate(panels):
        for col, when in enumerate(("init", "trained")):
            alpha = maps[when][layer][head]
            cell = grid[row, col].subgridspec(2, 2, width_ratios=[1, 24], height_ratios=[1, 24], wspace=0.02, hspace=0.02)
            ax = fig.add_subplot(cell[1, 1])
            signed = alpha.min() < 0
            limit = np.abs(alpha).max() or 1.0
            image = ax.imshow(alpha, cmap="RdBu_r" if signed else "viridis", vmin=-limit if signed else 0, vmax=limit,
                              interpolation="nearest")
            ax.set_xlabel("past token j")
            ax.set_yticks([])
            ax.set_title(f"layer {layer}, head {head}: {when}", fontsize="small")
            fig.colorbar(image, ax=ax, shrink=0.6, label="alpha_ij")
            role_strip(fig.add_subplot(cell[0, 1]), roles, vertical=False)
            role_strip(fig.add_subplot(cell[1, 0]), roles, vertical=True)
    shown = [r for r in ROLE_COLOURS if r in roles]
    fig.legend([Patch(color=ROLE_COLOURS[r]) for r in shown], shown, loc="outside upper center", ncol=len(shown),
               fontsize="small", title=title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def knobs(config: dict) -> str:
    """'custom (A=fixed 1.05, phi=exp, eta=sum)': the model and the knobs the principles are about."""
    m = config["model"]["mixer"]
    a = f"{m['A']} {m['gamma']:g}" if "gamma" in evolution(m["A"]).knobs else m["A"]
    noise = config["task"].get("frac_noise")
    return (f"{config['model']['name']} (A={a}, phi={m['phi']}, eta={m['eta']}, lr {config['train']['lr']:g})"
            + (f", frac_noise {noise:g}" if noise is not None else ""))


def write_maps(dirs: list[Path], out: Path, example: int = 0) -> tuple[None, list[Path]]:
    """maps_<run>.png for every run under `dirs` that saved its weights (no table: None)."""
    paths = sorted({p for d in map(Path, dirs) for p in Path(d).rglob(RESULT) if (p.parent / WEIGHTS["trained"]).exists()})
    if not paths:
        raise ValueError(f"no run under {', '.join(map(str, dirs))} saved its weights (train.save_weights=true)")
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for path in paths:
        maps, roles, config = coefficient_maps(path, example)
        name = path.parent.name
        title = f"{knobs(config)} on {config['task']['name']}, test sequence {example} (rows: queries i)"
        figure(maps, roles, title, out / f"maps_{name}.png")
        files.append(out / f"maps_{name}.png")
    return None, files
