"""The mixer's knobs (A_t, b_j, q, phi, eta_i and block extras) and the checks on their values."""

from __future__ import annotations

from dataclasses import dataclass

from cdyn_bench.mixer.components import ETA_FS, EVOLUTIONS, FEATURE_MAPS, INPUTS, NORMALISERS, READOUTS
from cdyn_bench.mixer.forms import FORMS
from cdyn_bench.registry import ConfigError, check_choice

OUT_NORMS = ("none", "group")


@dataclass
class MixerConfig:
    """Knobs of one coefficient-dynamics mixer; names follow the paper's symbols.

    A: evolution matrix A_t. identity; fixed = gamma*I; learned_scalar = one learned a_h per head;
       scalar_gate = input-dependent a_t*I; diag_gate = input-dependent Diag(a_t).
    gate_min, gate_max: range of the initial per-step factor a (per head, or per channel for
       diag_gate) at zero input; learned and gated A are parametrised in log space.
    b: impulse source; scale_b multiplies it by 1/sqrt(n).
    psi: feature map on q and k; normalize_k: L2-normalise keys.
    phi: scalar readout on q_i^T A_i...A_{j+1} b_j; eta: normaliser eta_i
       (one, sum = causal sum of phi values, abs_sum, learned = exp(eta_f(w^T u_i + o_h))).
    head_dim: n, the state size per head (0 = d_model / n_heads); value_dim likewise.
    conv_size: width of the short causal depthwise convolution on q, k, v (0 = off).
    """

    n_heads: int = 1
    head_dim: int = 0
    value_dim: int = 0
    A: str = "identity"
    gamma: float = 1.0
    gate_min: float = 0.9
    gate_max: float = 0.999
    b: str = "key"
    scale_b: bool = True
    psi: str = "none"
    normalize_k: bool = False
    phi: str = "identity"
    eta: str = "one"
    eta_f: str = "exp"
    conv_size: int = 0
    out_gate: bool = False
    out_norm: str = "none"
    form: str = "quadratic"
    chunk_size: int = 64

    def check(self, d_model: int) -> None:
        for key, allowed in (
            ("A", EVOLUTIONS), ("b", INPUTS), ("psi", FEATURE_MAPS), ("phi", READOUTS),
            ("eta", NORMALISERS), ("eta_f", ETA_FS), ("out_norm", OUT_NORMS), ("form", FORMS),
        ):
            check_choice(f"model.mixer.{key}", getattr(self, key), allowed)
        if self.n_heads <= 0 or d_model % self.n_heads:
            raise ConfigError(
                f"model.mixer.n_heads={self.n_heads}: must be a positive divisor of model.d_model={d_model}"
            )
        for key in ("head_dim", "value_dim", "conv_size"):
            if getattr(self, key) < 0:
                raise ConfigError(f"model.mixer.{key}={getattr(self, key)}: must be >= 0 (0 = default)")
        if not 0.0 < self.gate_min <= self.gate_max < 1.0:
            raise ConfigError(
                f"model.mixer.gate_min={self.gate_min}, gate_max={self.gate_max}: need 0 < gate_min <= gate_max < 1"
            )
        if self.gamma <= 0:
            raise ConfigError(f"model.mixer.gamma={self.gamma}: must be > 0")
        if self.chunk_size <= 0:
            raise ConfigError(f"model.mixer.chunk_size={self.chunk_size}: must be > 0")

    def dims(self, d_model: int) -> tuple[int, int]:
        """(n, value dim) per head, with 0 meaning d_model / n_heads."""
        default = d_model // self.n_heads
        return self.head_dim or default, self.value_dim or default
