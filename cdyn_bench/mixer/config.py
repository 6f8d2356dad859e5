"""The mixer's knobs (A_t, b_j, q, phi, eta_i and block extras) and the checks on their values."""

from __future__ import annotations

from dataclasses import dataclass

from cdyn_bench.choices import (
    ETA_FS, FEATURE_MAPS, FORM_NAMES, GAMMA_HEADS, GATES, INPUTS, NORMALISERS, OUT_NORMS, PHIS, RATE_INITS, STATE_FORMS,
    STATE_NORMALISERS,
)
from cdyn_bench.mixer.evolutions import EVOLUTIONS, evolution
from cdyn_bench.registry import ConfigError, check_choice


@dataclass
class MixerConfig:
    """Knobs of one coefficient-dynamics mixer; names follow the paper's symbols.

    A: evolution matrix A_t, one of the kinds in cdyn_bench.mixer.evolutions (each module says what it is;
       `cdyn-run --help` lists them with a line each).
    gamma, gamma_heads: A = fixed uses gamma for every head (same) or RetNet's 1 - 2^(-5-h) (retnet).
    gate: parametrisation of a learned or gated A, in log space. sigmoid: a = sigmoid(W u + c)^(1/tau)
       with tau = gate_temperature, W of rank gate_rank (0 = full), a in [gate_min, gate_max] at
       zero input; mlstm: xLSTM's forget gate sigmoid(W u + c), W = 0 and c from logit(gate_min) to
       logit(gate_max); mamba: a = exp(-Delta_t r), Delta_t = softplus(W u + dt_bias) in
       [dt_min, dt_max] at zero input, rate r uniform in [rate_min, rate_max] or 1..n (s4d_real).
    beta_max: beta_t = beta_max * sigmoid(w^T u_t), for a Householder A and b = beta_key: 1 (DeltaNet: beta in
       (0, 1), eigenvalues of I - beta k k^T in (0, 1]) or up to 2 (eigenvalue 1 - beta down to -1: Grazzi et al.,
       ICLR 2025, state tracking).
    householders: h, the Householder factors per token of a Householder A: A'_t = H_{t,h} ... H_{t,1},
       H_{t,m} = I - beta_{t,m} k_{t,m} k_{t,m}^T, k_{t,1} the key and the others from projections of their own
       (DeltaProduct, Siems et al. 2025: products of reflections reach rotations and permutations); h > 1 runs
       in every form but the scan (the chunked one steps h sub-steps per token, chunked.householder_product; auto
       picks the recurrent one, faster on CPU at the experiments' sizes).
    b: impulse source. key = k_j; feature = psi(k_j); delta_B = Delta_t k_t (Mamba, gate = mamba);
       beta_key = beta_t k_t (DeltaNet); input_gate_key = exp(i~_t) k_t (mLSTM). scale_b: times 1/sqrt(n).
    psi: feature map on q, and on k when b = feature; normalize_k, normalize_q: L2-normalise keys, queries.
    phi: scalar readout on q_i^T A_i...A_{j+1} b_j. eta: normaliser eta_i: one; sum = causal sum
       of phi values; abs_sum; learned = exp(eta_f(w^T u_i + o_h)); mlstm = max(|sum|, 1).
    n_heads; head_dim: n, the state size per head; value_dim: per head (0 = d_model / n_heads);
    share_qk: one q and one k (Mamba's C and B) shared by all heads.
    conv_size: width of the short causal depthwise convolution on q, k, v (0 = off).
    out_norm: norm of y: per head (group = RetNet's GroupNorm, rms) or rms_width over all heads together
       (Mamba-2's RMSNorm with one group); out_gate: y * silu(W u); norm_before_gate: norm, then gate
       (else gate, then norm: Mamba-2's norm_before_gate=False).
    form: quadratic, recurrent, chunked, scan (the recurrence as one linear scan, for A without a
       Householder part), or auto = chunked where it can compute the knobs, else quadratic.
       chunk_size: tokens per chunk of the chunked form.
    """

    n_heads: int = 1
    head_dim: int = 0
    value_dim: int = 0
    share_qk: bool = False
    A: str = "identity"
    gamma: float = 1.0
    gamma_heads: str = "same"
    gate: str = "sigmoid"
    gate_min: float = 0.9
    gate_max: float = 0.999
    gate_temperature: float = 1.0
    gate_rank: int = 0
    rate_init: str = "uniform"
    rate_min: float = 1.0
    rate_max: float = 16.0
    dt_min: float = 0.001
    dt_max: float = 0.1
    beta_max: float = 1.0
    householders: int = 1
    b: str = "key"
    scale_b: bool = True
    psi: str = "none"
    normalize_k: bool = False
    normalize_q: bool = False
    phi: str = "identity"
    eta: str = "one"
    eta_f: str = "exp"
    conv_size: int = 0
    out_gate: bool = False
    out_norm: str = "none"
    norm_before_gate: bool = True
    form: str = "auto"
    chunk_size: int = 64

    def check(self, d_model: int) -> None:
        """Raise ConfigError, one line naming the knob, on a bad value or combination."""
        for key, allowed in (
            ("A", list(EVOLUTIONS)), ("gamma_heads", GAMMA_HEADS), ("gate", GATES), ("rate_init", RATE_INITS),
            ("b", INPUTS), ("psi", FEATURE_MAPS), ("phi", PHIS), ("eta", NORMALISERS), ("eta_f", ETA_FS),
            ("out_norm", OUT_NORMS), ("form", FORM_NAMES),
        ):
            check_choice(f"model.mixer.{key}", getattr(self, key), allowed)
        self._check_sizes(d_model)
        self._check_ranges()
        self._check_gates()
        self._check_form()
        evolution(self.A).check(self, self.dims(d_model)[0])

    def _check_sizes(self, d_model: int) -> None:
        if self.n_heads <= 0 or d_model % self.n_heads:
            raise ConfigError(
                f"model.mixer.n_heads={self.n_heads}: must be a positive divisor of model.d_model={d_model}"
            )
        for key in ("head_dim", "value_dim", "conv_size", "gate_rank"):
            if getattr(self, key) < 0:
                raise ConfigError(f"model.mixer.{key}={getattr(self, key)}: must be >= 0 (0 = default)")
        if self.chunk_size <= 0:
            raise ConfigError(f"model.mixer.chunk_size={self.chunk_size}: must be > 0")
        if self.out_norm in ("group", "rms") and self.dims(d_model)[1] < 2:
            raise ConfigError(
                f"model.mixer.out_norm={self.out_norm} normalises each head's values: needs value_dim >= 2, "
                f"got {self.dims(d_model)[1]}. Allowed with value_dim 1: none, rms_width"
            )

    def _check_ranges(self) -> None:
        if not 0.0 < self.gate_min <= self.gate_max < 1.0:
            raise ConfigError(
                f"model.mixer.gate_min={self.gate_min}, gate_max={self.gate_max}: need 0 < gate_min <= gate_max < 1"
            )
        if not 1 <= self.householders <= 16:
            raise ConfigError(f"model.mixer.householders={self.householders}: need 1 <= householders <= 16")
        if self.householders > 1 and not evolution(self.A).householder:
            raise ConfigError(f"model.mixer.householders={self.householders} multiplies Householder factors: needs "
                              f"model.mixer.A={kinds_with(householder=True)}; got A={self.A}")
        if not 0.0 < self.beta_max <= 2.0:
            raise ConfigError(f"model.mixer.beta_max={self.beta_max}: need 0 < beta_max <= 2 (2 lets 1 - beta reach -1)")
        if not 0.0 < self.dt_min <= self.dt_max:
            raise ConfigError(f"model.mixer.dt_min={self.dt_min}, dt_max={self.dt_max}: need 0 < dt_min <= dt_max")
        if not 0.0 <= self.rate_min <= self.rate_max or self.rate_max <= 0:
            raise ConfigError(
                f"model.mixer.rate_min={self.rate_min}, rate_max={self.rate_max}: "
                "need 0 <= rate_min <= rate_max and rate_max > 0"
            )
        for key in ("gamma", "gate_temperature"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"model.mixer.{key}={getattr(self, key)}: must be > 0")

    def _check_gates(self) -> None:
        kind = evolution(self.A)
        if self.gamma_heads == "retnet" and "gamma_heads" not in kind.knobs:
            raise ConfigError(f"model.mixer.gamma_heads=retnet needs model.mixer.A="
                              f"{', '.join(n for n, k in EVOLUTIONS.items() if 'gamma_heads' in k.knobs)}; "
                              f"got A={self.A}")
        if self.rate_init == "s4d_real" and not (kind.factor == "diagonal" and kind.gated and self.gate == "mamba"):
            raise ConfigError(
                f"model.mixer.rate_init=s4d_real gives one rate per state channel: needs A="
                f"{kinds_with(factor='diagonal', gated=True)} and gate=mamba; got A={self.A}, gate={self.gate}. "
                "Allowed otherwise: uniform"
            )
        if self.b == "delta_B" and (self.gate != "mamba" or not kind.input_dependent):
            raise ConfigError(
                f"model.mixer.b=delta_B needs Delta_t: model.mixer.gate=mamba with A in "
                f"{kinds_with(input_dependent=True)}; got A={self.A}, gate={self.gate}"
            )

    def _check_form(self) -> None:
        if self.form not in STATE_FORMS:
            return
        if self.phi != "identity":
            raise ConfigError(
                f"model.mixer.form={self.form} needs model.mixer.phi=identity (a finite state); got phi={self.phi}. "
                f"Allowed forms for phi={self.phi}: quadratic, auto"
            )
        if self.eta not in STATE_NORMALISERS:
            raise ConfigError(
                f"model.mixer.form={self.form} cannot compute model.mixer.eta={self.eta}. "
                f"Allowed eta: {', '.join(STATE_NORMALISERS)}; or form=quadratic"
            )
        if self.householders > 1 and self.form == "scan":
            raise ConfigError(
                f"model.mixer.form=scan needs an elementwise A; model.mixer.householders={self.householders} runs in "
                f"the forms quadratic, recurrent, chunked and auto"
            )
        if self.form == "scan" and evolution(self.A).householder:
            raise ConfigError(
                f"model.mixer.form=scan needs an elementwise A (scalar or diagonal); got A={self.A}. "
                f"Allowed forms for A={self.A}: quadratic, recurrent, chunked, auto"
            )

    def resolved_form(self) -> str:
        """The form that runs: `form`, with auto = chunked where the knobs allow it, else quadratic."""
        if self.form != "auto":
            return self.form
        if self.phi != "identity" or self.eta not in STATE_NORMALISERS:
            return "quadratic"
        # A product of Householders steps h sub-steps per token in the chunked form: on CPU slower than the
        # recurrent one at the state-tracking size (length 64, h = 4: 1.50 against 0.95 s a training step).
        return "recurrent" if self.householders > 1 else "chunked"

    def inactive(self) -> list[str]:
        """Knobs that cannot change what this mixer computes, given the others (left out of a run's identity)."""
        off = evolution(self.A).inactive(self)
        if self.beta_max == 1.0 or not (evolution(self.A).householder or self.b == "beta_key"):
            off.add("beta_max")  # the default leaves a run's identity as it was before the knob
        if self.householders == 1:
            off.add("householders")  # likewise
        if self.eta != "learned":
            off.add("eta_f")
        if self.resolved_form() != "chunked":
            off.add("chunk_size")
        if self.out_norm == "none" or not self.out_gate:
            off.add("norm_before_gate")
        return sorted(off)

    def dims(self, d_model: int) -> tuple[int, int]:
        """(n, value dim) per head, with 0 meaning d_model / n_heads."""
        default = d_model // self.n_heads
        return self.head_dim or default, self.value_dim or default


def kinds_with(**facts: object) -> str:
    """The names of the evolution kinds with these facts (e.g. factor='diagonal'), comma-separated."""
    return ", ".join(name for name, kind in EVOLUTIONS.items() if all(getattr(kind, k) == v for k, v in facts.items()))
