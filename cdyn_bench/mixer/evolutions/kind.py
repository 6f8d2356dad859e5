"""What the framework asks of an evolution structure A_t: the base of every kind in this package.

A kind says how A_t = a_t A'_t is parametrised and what it is made of: `factor`, the a_t part
("none", a "scalar" a_t I or a "diagonal" Diag(a_t)), `householder`, whether A'_t = I - beta_t
k_t k_t^T, and `rotates`, whether A'_t turns pairs of channels by data-dependent angles (taken out as
a change of frame, cdyn_bench.mixer.frame). The forms, the streaming cache, the eigenvalues
(cdyn_bench.mixer.introspect) and the memory estimate read only these facts from the `Evolution` a kind
produces, so a new kind of an existing structure is computed by every form without touching them (a kind
rotates or has a Householder part, not both). Everything else that depends on the kind lives on its
object: its gate module, its knobs, its checks, its spectral-radius bound for the principle card, its
parameter count for the memory estimate.

Torch-free at import (the config checks and `cdyn-run --help` read the registry); `build` and
`decay` use torch when a model is made.
"""

from __future__ import annotations

from typing import Any

# The knobs (a cdyn_bench.mixer.config.MixerConfig, which imports this registry): typed loosely to keep the
# import one way.
MixerConfig = Any

# Knobs of each gate parametrisation (the others have no effect with that gate).
GATE_KNOBS = {
    "sigmoid": ("gate_min", "gate_max", "gate_temperature", "gate_rank"),
    "mlstm": ("gate_min", "gate_max"),
    "mamba": ("rate_init", "rate_min", "rate_max", "dt_min", "dt_max", "gate_rank"),
}
EVERY_GATE_KNOB = frozenset({"gate", *(k for knobs in GATE_KNOBS.values() for k in knobs)})
# Knobs that only some kinds read: a kind lists the ones it reads in `knobs`.
KIND_KNOBS = frozenset({"gamma", "gamma_heads"})


class EvolutionKind:
    """One value of model.mixer.A. Subclasses set the class attributes and override what differs.

    name: the config value; summary: one line for the help and the extension guide.
    factor: "none", "scalar" (a_t I, one number per head) or "diagonal" (Diag(a_t), one per channel).
    householder: A'_t = I - beta_t k_t k_t^T (k_t the L2-normalised key, beta_t in (0, beta_max)), else I.
    rotates: A'_t = Rot(theta_t), pairs of channels turned by the angles `angles` returns.
    gated: a_t is learned through the model.mixer.gate parametrisation (it reads the gate's knobs);
    input_dependent: a_t depends on the token (a gate with a projection, which gives Delta_t with gate=mamba).
    knobs: the other MixerConfig knobs it reads (gamma, gamma_heads).
    """

    name: str = ""
    summary: str = ""
    factor: str = "none"
    householder: bool = False
    rotates: bool = False
    gated: bool = False
    input_dependent: bool = False
    knobs: tuple[str, ...] = ()

    def check(self, cfg: MixerConfig, n: int) -> None:
        """Raise ConfigError on a knob combination this kind cannot compute (one line); n: the state size per head."""

    def inactive(self, cfg: MixerConfig) -> set[str]:
        """Knobs that cannot change what this kind computes, given the others."""
        off = set(KIND_KNOBS - set(self.knobs))
        if not self.gated:
            return off | EVERY_GATE_KNOB
        off |= EVERY_GATE_KNOB - {"gate", *GATE_KNOBS[cfg.gate]}
        if not self.input_dependent:
            off.add("gate_rank")
        if cfg.gate == "mamba" and cfg.rate_init == "s4d_real":
            off |= {"rate_min", "rate_max"}
        return off

    def build(self, cfg: MixerConfig, d_model: int, n: int) -> Any:
        """The module holding a_t's parameters (EvolutionParams.gate), or None for no factor."""
        return None

    def decay(self, gate: Any, u: Any, n_heads: int) -> tuple[Any, Any]:
        """(log a_t: (B, T, H) scalar, (B, T, H, n) diagonal, or None; Delta_t (B, T, H) or None) from u (B, T, d)."""
        return None, None

    def angles(self, gate: Any, u: Any, n_heads: int) -> Any:
        """(B, T, H, n/2) angles of a rotation part, or None (`rotates` kinds only)."""
        return None

    def is_identity(self, cfg: MixerConfig) -> bool:
        """Whether A_t = I exactly for these knobs (the principle card's order prediction)."""
        return False

    def radius_bound(self, cfg: MixerConfig) -> tuple[float, str]:
        """(an upper bound on the spectral radius of every A_t, why), from the parametrisation: here a gate's."""
        return 1.0, f"a {cfg.gate} gate in (0, 1)" + (" times a Householder factor of radius 1" if self.householder else "")

    def parameters(self, d_model: int, n_heads: int, n: int) -> int:
        """Approximate parameter count of a_t's module, for the memory estimate."""
        return d_model * n_heads * n if self.gated else 0


class GatedKind(EvolutionKind):
    """A kind whose a_t is learned through the model.mixer.gate parametrisation: one per head (factor scalar) or
    one per state channel (factor diagonal), from the token when input_dependent, else a learned constant."""

    gated = True

    def build(self, cfg: MixerConfig, d_model: int, n: int) -> Any:
        from cdyn_bench.mixer.gates import make_gate

        return make_gate(cfg, d_model, n, diagonal=self.factor == "diagonal", input_dependent=self.input_dependent)

    def decay(self, gate: Any, u: Any, n_heads: int) -> tuple[Any, Any]:
        log_a, dt = gate(u)
        return (log_a.view(*u.shape[:2], n_heads, -1) if self.factor == "diagonal" else log_a), dt
