"""The experiment registry: every finding and principle, the sweeps that test it and the reports drawn from it.

`cdyn-reproduce` (cdyn_bench.reproduce) runs them. Each finding is one or more sweeps
(conf/experiment/<sweep>.yaml) whose records go to results/<folder>/<sweep>/records, and reports made from
them by cdyn-report. A finding's `sweeps` are the grid sized to the CPU budget; its `extended` sweeps map
further boundaries and run only with --extended; its search extension (cdyn_bench.search) goes to
<finding>_search. A measurement (cdyn_bench.measures) stands in for sweeps where a finding is measured, not
trained. A new experiment is a conf/experiment file plus an entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Report:
    """One cdyn-report call: the sweeps whose records it reads, where it writes, its options."""

    sweeps: list[str]
    out: str
    options: list[str] = field(default_factory=list)


@dataclass
class Finding:
    """A finding or principle: the sweeps (conf/experiment/<sweep>.yaml) that test it and the reports drawn from them."""

    sweeps: list[str]
    reports: list[Report]
    quick: dict[str, list[str]]  # per sweep, the overrides that cut it to a few cells for --quick
    extended: list[str] = field(default_factory=list)  # sweeps past the CPU budget: run with --extended only
    folder: str = "findings"  # under results/: the paper's findings, or the other principles
    # Per sweep, the sweeps (same folder) whose finished records of identical configs it copies, not reruns.
    reuse: dict[str, list[str]] = field(default_factory=dict)
    # Measurements instead of (or beside) sweeps: names in cdyn_bench.measures.MEASURES, written into the folder.
    measures: list[str] = field(default_factory=list)


def unstable_boundaries(phi: str, sweep: str, suffix: str) -> list[Report]:
    """Finding 3's boundaries for one readout phi at gamma = 1.05: per condition, and against seq_len."""
    where = ["--where", "model.mixer.gamma=1.05", "--where", f"model.mixer.phi={phi}"]
    baseline = ["--where", "train.grad_clip=1.0", "--where", "model.pre_norm=True", "--where", "model.n_layers=2"]
    return [Report(["unstable_evolution", sweep], f"unstable_evolution/boundaries{suffix}",
                   [*where, "--x", "condition", "--series", "model.mixer.eta"]),
            Report(["unstable_evolution", sweep], f"unstable_evolution/seq_len{suffix}",
                   [*where, *baseline, "--x", "task.seq_len"])]


# The transfer experiment's arms on the softmax backbone, and its frontier presets (conf/text_arm).
SOFTMAX_BACKBONE = ["--where", "model.name=custom"]
TEXT_PRESETS = ["softmax", "linear", "norm_attn", "retnet", "mamba2", "gla", "deltanet", "gated_deltanet", "gated"]

FINDINGS = {
    "normalization": Finding(
        sweeps=["normalization", "normalization_boundaries", "normalization_long"],
        reports=[
            Report(["normalization_long"], "normalization/long", ["--x", "model.mixer.eta", "--heat", "model.mixer.phi",
                                                                  "model.mixer.eta"]),
            Report(["normalization"], "normalization", ["--x", "model.mixer.eta", "--heat", "model.mixer.phi",
                                                        "model.mixer.eta", "--compare", "model.mixer.eta"]),
            *(Report(["normalization"], f"normalization/{a}", ["--where", f"model.mixer.A={a}", "--x", "model.mixer.eta",
                                                               "--heat", "model.mixer.phi", "model.mixer.eta"])
              for a in ("identity", "scalar_gate")),
            Report(["normalization", "normalization_boundaries"], "normalization/boundaries",
                   ["--where", "model.mixer.A=identity", "--where", "model.mixer.phi=exp", "--x", "condition",
                    "--series", "model.mixer.eta"]),
        ],
        quick={"normalization": ["model.mixer.phi=exp", "model.mixer.eta=one,sum"],
               "normalization_boundaries": ["+condition=no_clip"],
               "normalization_long": ["model.mixer.phi=exp", "model.mixer.eta=one", "+evolution=scalar_gate"]},
    ),
    "unstable_evolution": Finding(
        sweeps=["unstable_evolution", "unstable_evolution_boundaries", "unstable_evolution_length"],
        reports=[
            Report(["unstable_evolution_length"], "unstable_evolution/length",
                   ["--x", "task.seq_len", "--series", "model.mixer.gamma", "model.mixer.eta", "--compare",
                    "model.mixer.gamma"]),
            Report(["unstable_evolution"], "unstable_evolution", ["--x", "model.mixer.gamma", "--heat",
                                                                  "model.mixer.gamma", "model.mixer.eta"]),
            *(Report(["unstable_evolution"], f"unstable_evolution/{phi}",
                     ["--where", f"model.mixer.phi={phi}", "--x", "model.mixer.gamma", "--heat", "model.mixer.gamma",
                      "model.mixer.eta"]) for phi in ("exp", "identity")),
            # Per readout: phi = exp in the budget, phi = identity in the extended sweep.
            *unstable_boundaries("exp", "unstable_evolution_boundaries", ""),
            *unstable_boundaries("identity", "unstable_evolution_boundaries_identity", "_identity"),
        ],
        quick={"unstable_evolution": ["model.mixer.gamma=1.05", "model.mixer.eta=one,sum"],
               "unstable_evolution_boundaries": ["+condition=seq_len_128"],
               "unstable_evolution_boundaries_identity": ["+condition=seq_len_128"],
               "unstable_evolution_length": ["+condition=seq_len_128", "model.mixer.gamma=1.05", "model.mixer.eta=sum"]},
        extended=["unstable_evolution_boundaries_identity"],
    ),
    "key_scaling": Finding(
        sweeps=["key_scaling", "key_scaling_noisy_icr"],
        reports=[
            Report(["key_scaling"], "key_scaling", ["--x", "model.mixer.head_dim", "--compare", "model.mixer.scale_b"]),
            Report(["key_scaling_noisy_icr"], "key_scaling/noisy_icr", ["--x", "model.mixer.head_dim"]),
            Report(["key_scaling_long"], "key_scaling/long", ["--x", "model.mixer.head_dim"]),
        ],
        quick={"key_scaling": ["model=softmax", "model.mixer.head_dim=16,64"],
               "key_scaling_noisy_icr": ["model=softmax", "model.mixer.head_dim=16,64"],
               "key_scaling_long": ["model=gated", "model.mixer.head_dim=16"]},
        extended=["key_scaling_long"],
        measures=["score_variance"],
    ),
    # The card's predictions against the outcomes of the first and third findings' runs (no runs of its own).
    "principle_card": Finding(
        sweeps=[], reports=[Report(["normalization", "unstable_evolution"], "principle_card", ["--principles"])],
        quick={},
    ),
    "finite_state": Finding(
        sweeps=[], reports=[Report([], ".", ["--finite-state"])], quick={}, folder="finite_state",
        measures=["inference_cost"],
    ),
    "readout_selectivity": Finding(
        sweeps=["readout_selectivity", "readout_selectivity_eta_one"],
        reports=[Report(["readout_selectivity"], "readout_selectivity", ["--x", "task.frac_noise"]),
                 Report(["readout_selectivity", "readout_selectivity_eta_one"], "readout_selectivity/eta",
                        ["--where", "model.mixer.phi=identity", "--x", "task.frac_noise", "--series", "model.mixer.eta",
                         "--compare", "model.mixer.eta"])],
        quick={"readout_selectivity": ["model.mixer.phi=identity,exp", "task.frac_noise=0.6"],
               "readout_selectivity_eta_one": ["task.frac_noise=0.6"]},
        folder="principles",
        measures=["noise_share"],
    ),
    "position": Finding(
        sweeps=["position", "position_conv"],
        reports=[
            *(Report(["position"], f"position/{task}", ["--where", f"task.name={task}", "--heat", "model.mixer.A",
                                                          "model.pos_emb", "--x", "model.mixer.A"])
              for task in ("selective_copy", "icr")),
            # The boundary on its own: a heat map over both sweeps would pick the convolution on validation.
            *(Report(["position", "position_conv"], f"position/{task}/conv",
                     ["--where", f"task.name={task}", "--where", "model.pos_emb=none", "--where",
                      "model.mixer.A=identity,scalar_gate", "--heat", "model.mixer.A", "model.mixer.conv_size",
                      "--x", "model.mixer.A"]) for task in ("selective_copy", "icr")),
        ],
        quick={"position": ["model.mixer.A=identity,scalar_gate", "model.pos_emb=none"],
               "position_conv": ["model.mixer.A=identity"]},
        folder="principles",
    ),
    "evolution_structure": Finding(
        sweeps=["evolution_structure"],
        reports=[Report(["evolution_structure"], "evolution_structure", ["--x", "task.num_kv_pairs"])],
        quick={"evolution_structure": ["model.mixer.A=scalar_gate,householder", "task.num_kv_pairs=8"]},
        folder="principles",
    ),
    "mqar_frontier": Finding(
        sweeps=["mqar_frontier", "mqar_frontier_conv"],
        reports=[Report(["mqar_frontier"], "mqar_frontier", ["--x", "state_size", "--series", "model.name",
                                                             "task.num_kv_pairs"]),
                 Report(["mqar_frontier"], "mqar_frontier/width", ["--x", "model.d_model"]),
                 Report(["mqar_frontier_conv"], "mqar_frontier/conv", ["--x", "model.mixer.conv_size", "--series",
                                                                       "model.name", "task.num_kv_pairs", "--compare",
                                                                       "model.mixer.conv_size"])],
        quick={"mqar_frontier": ["model=softmax,gated", "model.d_model=32", "+mqar_setting=short"],
               "mqar_frontier_conv": ["model=gated", "model.mixer.conv_size=0", "+mqar_setting=short"]},
        folder="principles",
        reuse={"mqar_frontier_conv": ["mqar_frontier"]},
    ),
    "depth": Finding(
        sweeps=["depth"],
        reports=[Report(["depth"], f"depth/{cell}", ["--where", f"task.name={task}", "--x", "model.n_layers"])
                 for cell, task in (("selectivity", "noisy_icr"), ("position", "selective_copy"), ("structure", "mqar"))],
        quick={"depth": ["+depth_cell=selectivity,position,structure", "model.n_layers=1,2"]},
        folder="principles",
        reuse={"depth": ["readout_selectivity", "position", "evolution_structure"]},
    ),
    "state_tracking": Finding(
        sweeps=["state_tracking"],
        reports=[Report(["state_tracking"], "state_tracking", ["--x", "task.name", "--series", "model.name",
                                                               "model.mixer.A", "model.mixer.beta_max"]),
                 Report(["state_tracking"], "state_tracking/beta",
                        ["--where", "model.mixer.A=householder,gated_householder", "--x", "task.name", "--series",
                         "model.mixer.A", "model.mixer.beta_max", "--heat", "model.mixer.beta_max", "task.name",
                         "--compare", "model.mixer.beta_max"]),
                 Report(["state_tracking"], "state_tracking/principles", ["--principles"])],
        quick={"state_tracking": ["+transition=householder_neg,scalar_gate", "task=parity"]},
        folder="principles",
    ),
    # Issue 29: the findings' arms and the presets on character-level text, bits per character (the transfer
    # table: cdyn_bench.measures.transfer).
    "transfer_text": Finding(
        sweeps=["transfer_text"],
        reports=[
            Report(["transfer_text"], "transfer_text/normalization",
                   [*SOFTMAX_BACKBONE, "--where", "model.mixer.A=identity", "--where", "model.mixer.head_dim=64",
                    "--where", "model.mixer.scale_b=True", "--x", "model.mixer.eta", "--series", "model.mixer.phi",
                    "--compare", "model.mixer.eta"]),
            Report(["transfer_text"], "transfer_text/key_scaling",
                   [*SOFTMAX_BACKBONE, "--where", "model.mixer.A=identity", "--where", "model.mixer.phi=exp",
                    "--where", "model.mixer.eta=sum", "--x", "model.mixer.head_dim", "--compare", "model.mixer.scale_b"]),
            Report(["transfer_text"], "transfer_text/unstable_evolution",
                   [*SOFTMAX_BACKBONE, "--where", "model.mixer.A=fixed", "--x", "model.mixer.gamma", "--series",
                    "model.mixer.eta", "--compare", "model.mixer.gamma"]),
            Report(["transfer_text"], "transfer_text/frontier",
                   ["--where", "model.name=" + ",".join(TEXT_PRESETS), "--x", "state_size", "--series", "model.name"]),
        ],
        quick={"transfer_text": ["+text_arm=eta_exp_sum,eta_exp_one,keys_16,gamma_105_sum,preset_gla"]},
        folder="transfer",
        measures=["transfer", "text_sample_weights", "text_sample"],
    ),
    "coefficient_maps": Finding(
        sweeps=[], reports=[Report([], ".", ["--maps"])], quick={}, folder="maps",
        measures=["coefficient_maps"],
    ),
    "spectra": Finding(
        sweeps=["spectra", "spectra_no_conv"],
        reports=[Report(["spectra", "spectra_no_conv"], "spectra", ["--spectra"]),
                 Report(["spectra", "spectra_no_conv"], "accuracy", [])],
        quick={"spectra": ["model=softmax,gated", "task=mqar"], "spectra_no_conv": ["task=mqar"]},
        folder="spectra",
    ),
}
QUICK = ["seed=0", "train.lr=3e-3", "train.max_steps=60", "train.eval_every=30", "task.num_val=256", "task.num_test=256"]


def records(root: Path, sweep: str) -> Path:
    """Where a sweep's records are, under a finding's folder."""
    return root / sweep / "records"


def search_folder(name: str) -> str:
    """The sweep folder of a finding's search extension (cdyn_bench.search): <finding>_search."""
    return f"{name}_search"


def finding_sweeps(name: str) -> list[str]:
    """Every sweep of a finding, the extended ones included, and its search extension."""
    return [*FINDINGS[name].sweeps, *FINDINGS[name].extended, search_folder(name)]
