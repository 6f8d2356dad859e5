"""`cdyn-run --help`, generated from the schemas, the choice tables and conf/; and the check of group selections."""

from __future__ import annotations

import dataclasses
import re
import textwrap
from importlib import resources
from typing import Any

import yaml

from cdyn_bench.choices import (
    BLOCK_NORMS, DECAY_RULES, DEVICES, ETA_FS, FEATURE_MAPS, FORM_NAMES, GAMMA_HEADS, GATES, INPUTS,
    LOSS_ON, NORMALISERS, OUT_NORMS, PHIS, POS_EMBS, RATE_INITS, TASK_READOUTS, WANDB_MODES,
)
from cdyn_bench.config import RunConfig
from cdyn_bench.mixer.config import MixerConfig
from cdyn_bench.mixer.evolutions import EVOLUTIONS
from cdyn_bench.registry import ConfigError, did_you_mean
from cdyn_bench.task_config import TASK_CONFIGS, TaskConfig

CHOICES = {
    "device": DEVICES,
    "wandb": WANDB_MODES,
    "train.weight_decay_on": DECAY_RULES,
    "model.pos_emb": POS_EMBS,
    "model.norm": BLOCK_NORMS,
    "model.mixer.A": EVOLUTIONS,
    "model.mixer.gamma_heads": GAMMA_HEADS,
    "model.mixer.gate": GATES,
    "model.mixer.rate_init": RATE_INITS,
    "model.mixer.b": INPUTS,
    "model.mixer.psi": FEATURE_MAPS,
    "model.mixer.phi": PHIS,
    "model.mixer.eta": NORMALISERS,
    "model.mixer.eta_f": ETA_FS,
    "model.mixer.out_norm": OUT_NORMS,
    "model.mixer.form": FORM_NAMES,
    "task.loss_on": LOSS_ON,
    "task.readout": TASK_READOUTS,
}

NOTES = {
    "model.mixer.A": "; ".join(f"{name}: {kind.summary}" for name, kind in EVOLUTIONS.items()) + ".",
    "model.mixer.eta": (
        "Where the normaliser can cross zero (signed coefficients: phi=identity with eta=sum) the model's "
        "behaviour is its own, with no clamping: a run that diverges that way is recorded as diverged, with "
        "the step. A row whose sum is exactly zero gets zero coefficients."
    ),
    "train.num_threads": (
        "0 = the cores this process may use. Results are bit-identical only at the same thread count. Two runs "
        "side by side on 2 cores, each taking all cores, run ~10x slower: give each train.num_threads=1 "
        "(sweeps divide the cores themselves)."
    ),
    "task.num_train": "0 = fresh examples at every step.",
}

KINDS = {"model": "preset", "task": "task", "train": "training config", "experiment": "experiment",
         "hydra/launcher": "launcher", "mad_setting/cpu": "MAD setting", "mad_setting/full": "MAD setting"}
UNCHECKED = re.compile(r"[()\[\]{}'\"$\\]")
WIDTH = 100
KEY_WIDTH = 30
PRESET_KNOBS = ("A", "b", "psi", "phi", "eta")
NBSP = "\u00a0"

USAGE = """\
cdyn-run: train one coefficient-dynamics model on a synthetic recall task

usage: cdyn-run [GROUP=NAME ...] [KEY=VALUE ...]
       cdyn-run -m [GROUP=A,B ...] [KEY=X,Y ...]      a sweep: every combination is one run
       cdyn-run +experiment=NAME [KEY=VALUE ...]       a named sweep from conf/experiment
       cdyn-run --help | --hydra-help                  this help | Hydra's own help and flags
"""

ABOUT = (
    "Trains one model in coefficient-dynamics form, y_i = sum_j phi(q_i^T A_i...A_{j+1} b_j)/eta_i v_j, "
    "on a synthetic recall task and writes its record, result.json, to <out_dir>/runs/<model>-<task>-<hash>/ "
    "(a finished record is not run again unless force=true). With -m, comma-separated values sweep, one run "
    "per combination, into <out_dir>/sweeps/<sweep_name>/; +experiment=NAME selects a named sweep. Any key "
    "below can be set on the command line, e.g. cdyn-run model=softmax task=noisy_icr train.lr=1e-3 seed=1."
)


def conf_root() -> Any:
    return resources.files("cdyn_bench.conf")


def option_names(group: str) -> list[str]:
    """The options of a config group: the stems of conf/<group>/*.yaml."""
    folder = conf_root().joinpath(*group.split("/"))
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def conf_groups(folder: Any = None, prefix: str = "") -> list[str]:
    """Every folder of conf/ that holds YAML options, as a group path (model, hydra/launcher, ...)."""
    folder = folder or conf_root()
    groups = []
    for child in sorted(folder.iterdir(), key=lambda p: p.name):
        if child.is_dir() and not child.name.startswith("__"):
            group = f"{prefix}{child.name}"
            groups += [group] if option_names(group) else []
            groups += conf_groups(child, f"{group}/")
    return groups


def read_option(group: str, name: str) -> str:
    return conf_root().joinpath(*group.split("/"), f"{name}.yaml").read_text()


def description(text: str) -> str:
    """The first clause of a YAML file's leading comment block (Hydra's @package line skipped)."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith("# @package"):
            lines.append(line.lstrip("# ").strip())
    return head(" ".join(lines))


def head(text: str) -> str:
    """`text` up to its first sentence end or `: ` outside parentheses: `Ray (extra: cdyn-bench[ray])`."""
    depth = 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and text.startswith(("? ", "! "), i):
            return text[: i + 1]
        if depth == 0 and text.startswith((". ", ": "), i):
            return text[:i]
    return text.rstrip(".")


def show(value: Any) -> str:
    """A value as it is written on the command line: true, null, 0.003, [0.9, 0.98]."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def option_values(group: str, name: str) -> dict[str, Any]:
    return yaml.safe_load(read_option(group, name)) or {}


def default_selections() -> dict[str, str]:
    """The groups conf/config.yaml selects when none is given on the command line, e.g. {"model": "gated"}."""
    defaults = yaml.safe_load(conf_root().joinpath("config.yaml").read_text())["defaults"]
    groups = set(conf_groups())
    return {key: value for entry in defaults if isinstance(entry, dict)
            for key, value in entry.items() if key in groups}


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        nested = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merge(merged[key], value) if nested else value
    return merged


def default_values() -> dict[str, Any]:
    """The keys of a plain `cdyn-run`: RunConfig's defaults with the default group selections applied."""
    values = dataclasses.asdict(RunConfig())
    for group, name in default_selections().items():
        values = merge(values, {group: option_values(group, name)})
    return values


def schema_fields(node: Any, prefix: str = "") -> list[tuple[str, dataclasses.Field]]:
    """(dotted key, field) for every plain field of a dataclass tree, each level's scalars before its children."""
    fields = [f for f in dataclasses.fields(node) if f.name != "task"]
    scalars = [(f"{prefix}{f.name}", f) for f in fields if not dataclasses.is_dataclass(getattr(node, f.name))]
    children = [f for f in fields if dataclasses.is_dataclass(getattr(node, f.name))]
    for f in sorted(children, key=lambda f: f.name != "train"):
        scalars += schema_fields(getattr(node, f.name), f"{prefix}{f.name}.")
    return scalars


def lookup(values: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        values = values[part]
    return values


def allowed(key: str, field: dataclasses.Field) -> str:
    return " | ".join(CHOICES[key]) if key in CHOICES else str(field.type)


def key_row(key: str, field: dataclasses.Field, default: str) -> list[str]:
    """`model.mixer.phi  identity | exp | ...  (default identity)`, wrapped, with the key's note below."""
    kept = default.replace(" ", NBSP)
    rows = wrap(f"{allowed(key, field)}  ({kept})", f"  {key:<{KEY_WIDTH}}", " " * (KEY_WIDTH + 2))
    return rows + (wrap(NOTES[key], " " * (KEY_WIDTH + 4)) if key in NOTES else [])


def wrap(text: str, first: str, rest: str | None = None) -> list[str]:
    """`text` wrapped at WIDTH; textwrap does not break at NBSP, which is printed as a space."""
    rows = textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=first if rest is None else rest,
                         break_on_hyphens=False)
    return [row.replace(NBSP, " ") for row in rows]


def key_rows() -> list[str]:
    values, picks = default_values(), default_selections()
    chosen = ", ".join(f"{group}={name}" for group, name in picks.items())
    rows = ["", *wrap(f"Keys, with the values of a plain cdyn-run in parentheses (the schema's defaults, "
                      f"cdyn_bench/config.py, with {chosen}). The knobs' meaning: the MixerConfig docstring "
                      "in cdyn_bench/mixer/config.py.", "")]
    for key, field in schema_fields(RunConfig()):
        rows += key_row(key, field, f"default {show(lookup(values, key))}")
    for field in dataclasses.fields(TaskConfig):
        if field.name != "name":
            rows += key_row(f"task.{field.name}", field, "per task, below")
    return rows


def option_rows(group: str, title: str, detail: Any = None) -> list[str]:
    """A group's options, one described per line, with `detail(name)` indented below where given."""
    rows = ["", title]
    indent = " " * (KEY_WIDTH + 2)
    for name in option_names(group):
        # A name as wide as the key column gets a line of its own, its description below.
        head = [f"  {name}"] if len(name) >= KEY_WIDTH else []
        rows += head + wrap(description(read_option(group, name)), indent if head else f"  {name:<{KEY_WIDTH}}", indent)
        rows += wrap(detail(name), " " * (KEY_WIDTH + 4)) if detail else []
    return rows


def preset_knobs(name: str) -> str:
    """`A=identity b=key psi=none phi=identity eta=one`: the preset's (A, b, psi, phi, eta)."""
    mixer = merge(dataclasses.asdict(MixerConfig()), option_values("model", name).get("mixer", {}))
    return " ".join(f"{knob}={mixer[knob]}" for knob in PRESET_KNOBS)


def task_settings(name: str) -> str:
    """`vocab_size=256 seq_len=64 ...`: every key of the task with the value `task=<name>` gives it."""
    schema = {f.name: f.default for f in dataclasses.fields(TASK_CONFIGS[name]) if f.name != "name"}
    values = merge(schema, option_values("task", name))
    return " ".join(f"{key}={show(values[key])}" for key in schema)


def mad_setting_rows() -> list[str]:
    """One line for the generated MAD settings, never their file names."""
    groups = [g for g in conf_groups() if g.startswith("mad_setting/")]
    counts = " + ".join(f"{len(option_names(g))} {g.split('/')[-1]}" for g in groups)
    users = [n for n in option_names("experiment") if "mad_setting/" in read_option("experiment", n)]
    uses = " and ".join(f"+experiment={n}" for n in users)
    return ["", *wrap(f"conf/mad_setting: MAD's settings ({counts}), used by {uses}.", "")]


def help_text() -> str:
    """The text `cdyn-run --help` prints."""
    rows = [USAGE, *wrap(ABOUT, "")]
    rows += key_rows()
    rows += option_rows("model", "Presets (model=NAME; then model.KEY=VALUE changes one knob):", preset_knobs)
    rows += option_rows("task", "Tasks (task=NAME; then task.KEY=VALUE, every key below):", task_settings)
    rows += option_rows("train", "Training configs (train=NAME):")
    rows += option_rows("experiment", "Experiments (+experiment=NAME; each is a sweep):")
    rows += option_rows("evolution", "Evolution choices (+evolution=NAME; A_t with the positions it needs):")
    rows += option_rows("condition", "Conditions (+condition=NAME; one factor changed from an experiment's baseline):")
    rows += option_rows("order_task", "Order-dependent tasks (+order_task=NAME; the position experiment):")
    rows += option_rows("mqar_setting", "MQAR settings (+mqar_setting=NAME; the mqar_frontier experiment):")
    rows += option_rows("depth_cell", "Depth cells (+depth_cell=NAME; the depth experiment):")
    rows += option_rows("hydra/launcher", "Launchers (hydra/launcher=NAME; Hydra's basic one runs a sweep's runs in turn):")
    rows += mad_setting_rows()
    rows += ["", "Hydra's own help, flags and the composed config: cdyn-run --hydra-help, cdyn-run --cfg job."]
    return "\n".join(rows) + "\n"


def hydra_options(group: str) -> list[str]:
    """The options Hydra and its installed plugins register for a hydra/ group (e.g. basic, joblib)."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    Plugins.instance()
    try:
        names = ConfigStore.instance().list(group)
    except OSError:
        return []
    return [n[: -len(".yaml")] for n in names if n.endswith(".yaml")]


def group_selection(item: str, groups: list[str]) -> tuple[str, str, list[str]] | None:
    """(key as written, group, selected names) of a group override such as `+experiment=x` or `model=a,b`."""
    if item.startswith("-") or "=" not in item:
        return None
    written, value = item.split("=", 1)
    group = written.lstrip("~+").split("@")[0]
    if group not in groups or UNCHECKED.search(value):
        return None
    names = [v.strip() for v in value.split(",")]
    return written, group, [n for n in names if n and n != "null"]


def known_options(group: str, name: str) -> list[str]:
    """conf/<group>'s options, and for a hydra/ group also Hydra's own where `name` is not in conf/."""
    known = option_names(group)
    if name in known or not group.startswith("hydra/"):
        return known
    return known + [n for n in hydra_options(group) if n not in known]


def check_groups(overrides: list[str]) -> None:
    """Raise ConfigError `model=gatd: unknown preset. Did you mean gated? Available: ...` on an unknown option."""
    groups = conf_groups()
    for item in overrides:
        written, group, names = group_selection(item, groups) or ("", "", [])
        for name in names:
            known = known_options(group, name)
            if name not in known:
                raise ConfigError(f"{written}={name}: unknown {KINDS.get(group, 'option')}."
                                  f"{did_you_mean(name, known)} Available: {', '.join(known)}")
