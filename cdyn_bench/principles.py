"""The principle card: what the coefficient-dynamics framework predicts for a config, before training.

Each prediction follows from the knobs alone (Sieber et al., arXiv 2510.09389, section 2 of
../shared/design.md), with its reason:

- memory: a linear readout (phi = identity with a state normaliser) has a finite state, of a size
  fixed by the knobs; any other readout needs every past impulse and value (a KV cache growing with L).
- order: with A_t = I, no positional embedding and no convolution, one layer mixes the past as a
  multiset, so a single layer cannot tell orders apart; stacked causal layers see prefixes of
  different multisets and can, so for L >= 2 layers the prediction is only that order is not built in.
- growth: the coefficient of a token i - j steps back carries A_i ... A_{j+1}; the bound of the
  spectral radius of A_t from its parametrisation (gates in (0, 1), gamma, unit Householder
  directions with beta in (0, 1)) raised to seq_len - 1 bounds its growth; with eta = 1 nothing
  normalises it, and exp of a growing score overflows float32 at about 88.7.
- selectivity: the zero set of phi: a hyperplane (identity), a half-space (relu), none (exp,
  softplus, elu+1, sigmoid: positive everywhere, a coefficient can only decay towards 0).
- score scale: b_j = k_j / sqrt(n) keeps the variance of q_i^T b_j at initialisation O(1) in n;
  unscaled it is O(n) (measured: results/findings/key_scaling/score_variance.md).
- sign: eta = sum of a phi that takes both signs (identity on signed scores) can pass through zero;
  abs_sum, the mLSTM floor max(|sum|, 1), a learned exp(.), positive phis and positive feature maps
  on q and k (linear attention's elu+1) cannot.
- transitions: positive-real eigenvalues of A_t only scale the state, so a linear recurrence of them cannot
  track a running parity at every length; eigenvalue -1 (a Householder with beta up to 2) can (Grazzi et
  al., ICLR 2025); the test: the running parity task at 4x the training length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cdyn_bench.choices import PHI_FACTS, STATE_NORMALISERS
from cdyn_bench.config import ModelConfig, RunConfig
from cdyn_bench.mixer.config import MixerConfig
from cdyn_bench.mixer.evolutions import evolution

FLOAT32_LOG_MAX = math.log(3.4028234663852886e38)  # exp overflows float32 above this


@dataclass
class Prediction:
    """One line of the card: a name, the predicted value (machine-readable) and its reason (one sentence)."""

    name: str
    value: str | int | float | bool
    reason: str


def state_prediction(model: ModelConfig, seq_len: int) -> Prediction:
    """Finite state or KV cache, with the floats per layer the streaming cache holds (CoeffMixer.state_size,
    which a test checks against the cache itself), the short convolution's last inputs included."""
    import torch

    from cdyn_bench.mixer.layer import CoeffMixer

    cfg = model.mixer
    n, dv = cfg.dims(model.d_model)
    H = cfg.n_heads
    with torch.random.fork_rng(devices=[]):  # the throwaway mixer's init must not move anyone's RNG
        size = CoeffMixer(model.d_model, cfg, rotary=model.pos_emb == "rotary").state_size(seq_len)
    conv = f" plus the convolution's last {cfg.conv_size - 1} inputs" if cfg.conv_size > 1 else ""
    if cfg.phi == "identity" and cfg.eta in STATE_NORMALISERS:
        extra = " plus the causal sum and its log scale, H (n + 1)" if cfg.eta in ("sum", "mlstm") else ""
        return Prediction("memory", "finite_state", f"phi = identity with eta = {cfg.eta}: the sum collapses into a "
                          f"state S_i = A_i S_(i-1) + b_i v_i^T of H n dv = {H}*{n}*{dv}{extra}{conv}: {size:,} "
                          f"floats per layer, whatever the length")
    return Prediction("memory", "kv_cache", f"phi = {cfg.phi}, eta = {cfg.eta}: no finite state; every past b_j and "
                      f"v_j is kept, H (n + dv) = {H * (n + dv)} floats per token and layer (with a scalar A also "
                      f"each key's log offset){conv}: {size:,} at length {seq_len}")


def order_prediction(model: ModelConfig) -> Prediction:
    cfg = model.mixer
    identity = evolution(cfg.A).is_identity(cfg)
    invariant = identity and model.pos_emb == "none" and cfg.conv_size == 0
    if not invariant:
        sources = [s for s, on in (("A_t != I", not identity), (f"pos_emb = {model.pos_emb}", model.pos_emb != "none"),
                                   (f"a width-{cfg.conv_size} convolution", cfg.conv_size > 0)) if on]
        return Prediction("order", "encoded", f"positions enter through {', '.join(sources)}")
    if model.n_layers == 1:
        return Prediction("order", "invariant", "A = I, no positional embedding, no convolution, one layer: each "
                          "output sees its past as a multiset, so order-dependent tasks cannot be solved")
    return Prediction("order", "not_built_in", f"A = I, no positional embedding, no convolution: one layer is "
                      f"permutation-invariant over the past, but {model.n_layers} stacked causal layers see prefixes "
                      "of different multisets, so order can be learned, not read off")


def radius_bound(cfg: MixerConfig) -> tuple[float, str]:
    """(an upper bound on the spectral radius of every A_t, why), from the parametrisation."""
    return evolution(cfg.A).radius_bound(cfg)


# Normalisers computed from the coefficients themselves, which divide a common growth out.
SCORE_NORMALISERS = ("sum", "abs_sum", "mlstm")


def growth_prediction(cfg: MixerConfig, seq_len: int) -> Prediction:
    """bounded (radius <= 1, no input gate); normalised (growth that eta divides out); overflow (the float32
    forward must overflow: the decay product itself passes float32, or phi = exp of a unit score grown by
    it does, with nothing normalising); unbounded (growth no normaliser removes, not certain to overflow)."""
    radius, why = radius_bound(cfg)
    log_growth = (seq_len - 1) * math.log(radius)
    gated_input = cfg.b == "input_gate_key"
    bound = f"{radius:g}^{seq_len - 1} = {math.exp(log_growth):.3g}" if log_growth < 700 else f"exp({log_growth:.0f})"
    if log_growth <= 1e-12 and not gated_input:
        return Prediction("growth", "bounded", f"{why}: coefficients cannot grow along the sequence (bound {bound})")
    source = f"{why}, over length {seq_len}: |A_i...A_(j+1)| up to {bound}" if log_growth > 1e-12 else \
        "the mLSTM input gate exp(i~_j) is unbounded"
    if log_growth > FLOAT32_LOG_MAX:
        return Prediction("growth", "overflow", f"{source}: the decay product itself passes float32's range")
    if cfg.eta in SCORE_NORMALISERS and cfg.phi != "exp" or cfg.eta == "sum":
        return Prediction("growth", "normalised", f"{source}; eta = {cfg.eta} divides it out (computed in log space)")
    exp_overflow = cfg.phi == "exp" and (math.exp(log_growth) > FLOAT32_LOG_MAX or gated_input)
    reason = {"one": "eta = 1 does not normalise it", "learned": "a learned eta does not see the scores",
              "abs_sum": "eta = abs_sum divides it out, but exp is taken before the division",
              "mlstm": "eta = mlstm divides it out, but exp is taken before the division"}[cfg.eta]
    return Prediction("growth", "overflow" if exp_overflow else "unbounded", f"{source}; {reason}" + (
        f", and exp of a unit score grown this much passes float32's {FLOAT32_LOG_MAX:.1f}" if exp_overflow else ""))


def selectivity_prediction(cfg: MixerConfig) -> Prediction:
    zero_set = PHI_FACTS[cfg.phi][0]
    reason = {"hyperplane": "phi = identity is zero only on the hyperplane q_i^T s = 0: a noise token is ignored "
                            "only if its propagated key is orthogonal to the query",
              "half_space": "phi = relu is zero on the half-space q_i^T s <= 0: noise can be switched off exactly",
              "none": f"phi = {cfg.phi} is positive everywhere: coefficients never vanish, they can only decay "
                      "(exp: exponentially in the score)"}[zero_set]
    return Prediction("zero_set", zero_set, reason)


def score_prediction(cfg: MixerConfig, d_model: int) -> Prediction:
    n = cfg.dims(d_model)[0]
    if cfg.scale_b:
        return Prediction("score_variance", "O(1)", f"b_j = k_j / sqrt(n): var(q_i^T b_j) at init does not grow "
                          f"with n = {n} (results/findings/key_scaling/score_variance.md)")
    return Prediction("score_variance", "O(n)", f"b_j unscaled: var(q_i^T b_j) at init grows like n = {n} "
                      "(16x from n = 16 to 256 measured, results/findings/key_scaling/score_variance.md)")


def nonnegative_scores(cfg: MixerConfig) -> bool:
    """Whether q_i^T A_i...A_{j+1} b_j >= 0 always: positive feature maps on q and on k (b = psi(k)) and an
    A with nonnegative entries (scalar or diagonal factors; a Householder or rotation factor can flip signs)."""
    positive = cfg.psi in ("elu1", "relu", "exp", "softmax") and cfg.b == "feature"
    return positive and not (evolution(cfg.A).householder or evolution(cfg.A).rotates)


def sign_prediction(cfg: MixerConfig) -> Prediction:
    crosses = cfg.eta == "sum" and PHI_FACTS[cfg.phi][1] == "signed" and not nonnegative_scores(cfg)
    if cfg.eta == "one":
        return Prediction("normaliser_sign", "none", "eta = 1: no normaliser")
    if crosses:
        return Prediction("normaliser_sign", "can_cross_zero", f"eta = sum of phi = {cfg.phi}, which takes both "
                          "signs: the causal sum can pass through zero and the coefficients blow up there")
    why = (f"the scores are >= 0 (psi = {cfg.psi} on q and k)" if cfg.eta == "sum" and cfg.phi == "identity"
           else f"eta = {cfg.eta} with phi = {cfg.phi}")
    return Prediction("normaliser_sign", "positive", f"{why}: the normaliser does not change sign")


def transition_prediction(cfg: MixerConfig) -> Prediction:
    """Which eigenvalues A_t can have, and so which state the recurrence can track (principle 4 on state tracking):
    positive reals only scale the state, so a running parity cannot be kept at any length (Grazzi et al., ICLR
    2025); a Householder with beta up to 2 reaches eigenvalue -1, a reflection, which can flip it; an element of
    order above 2 (Z_m for m > 2; the 3-cycles of A5 and S5) needs a rotation (A = rotation: complex
    eigenvalues, commuting, so abelian groups only) or a product of reflections per token
    (model.mixer.householders = h > 1: non-commuting, and every permutation of m points is a product of at most
    m - 1 transpositions, each a reflection I - 2 k k^T, so h >= m - 1 with beta up to 2 carries S_m; DeltaProduct,
    Siems et al. 2025)."""
    kind = evolution(cfg.A)
    if not (cfg.phi == "identity" and cfg.eta in STATE_NORMALISERS):
        return Prediction("transitions", "no_state", f"phi = {cfg.phi}, eta = {cfg.eta}: no finite state whose "
                          "transitions the spectrum of A_t describes")
    if kind.rotates:
        return Prediction("transitions", "complex", "rotations of channel pairs: eigenvalues a_t e^(+-i theta_t), so "
                          "the state can be turned: Z_m (theta = 2 pi / m) and parity (theta = pi) are representable; "
                          "a non-abelian group (S3, A5, S5) needs non-commuting transitions, which rotations of fixed "
                          "pairs are not")
    h = cfg.householders
    if kind.householder and h > 1 and cfg.beta_max >= 2:
        return Prediction("transitions", "reflection_products", f"a product of {h} Householders per token with beta "
                          f"up to {cfg.beta_max:g}: reflections and their products, rotations (complex eigenvalues), "
                          "non-commuting; a permutation of m points is at most m - 1 reflections, so parity, Z_m and "
                          f"S_m for m <= {h + 1} are representable (S5 needs h >= 4)")
    if kind.householder and h > 1:
        return Prediction("transitions", "complex", f"a product of {h} Householders per token with beta up to "
                          f"{cfg.beta_max:g}: complex eigenvalues are possible (the product is not symmetric), but "
                          f"every factor but a reflection (beta = 2) shrinks its direction, so an exact flip or rotation "
                          "needs beta = 2")
    if kind.householder and cfg.beta_max > 1:
        return Prediction("transitions", "signed_real", f"I - beta k k^T with beta up to {cfg.beta_max:g}: eigenvalues "
                          f"down to {1 - cfg.beta_max:g}, a reflection can flip the state (parity); an element of order "
                          "above 2 needs a rotation or a product of reflections per token")
    return Prediction("transitions", "positive_real", f"A = {cfg.A}: every eigenvalue of A_t is a positive real (or "
                      "1 - beta >= 0), so the state is only scaled: a running parity cannot be tracked at every length")


def card(cfg: RunConfig) -> list[Prediction]:
    """The predictions for a run config, in reading order."""
    seq_len = cfg.task.check().inputs.shape[1]  # the model's length T (the recall tasks shift: seq_len - 1)
    mixer = cfg.model.mixer
    return [state_prediction(cfg.model, seq_len), order_prediction(cfg.model), growth_prediction(mixer, seq_len),
            selectivity_prediction(mixer), score_prediction(mixer, cfg.model.d_model), sign_prediction(mixer),
            transition_prediction(mixer)]


def card_record(cfg: RunConfig) -> dict[str, str | int | float | bool]:
    """The card as a run record stores it: {name: value}."""
    return {p.name: p.value for p in card(cfg)}


def card_text(cfg: RunConfig) -> str:
    """The card as cdyn-explain prints it."""
    lines = [f"Principle card: model={cfg.model.name} task={cfg.task.name} (predictions before training)"]
    for p in card(cfg):
        lines.append(f"  {p.name:16s} {str(p.value):14s} {p.reason}")
    return "\n".join(lines)


# Tasks whose answer depends on the order of the tokens (which value follows which key; the order of
# the copied tokens): a permutation-invariant mixer cannot solve them.
ORDER_DEPENDENT = ("icr", "noisy_icr", "fuzzy_icr", "mqar", "selective_copy")
SOLVED = 0.9  # test accuracy at which a run counts as having solved its task


def outcome_check(prediction: str, value: Any, status: str, accuracy: float, task: str) -> str | None:
    """'held' or 'failed' for a prediction that makes a claim about a run's outcome, else None.

    growth = overflow claims a divergence; bounded or normalised claim none; order = invariant claims
    that an order-dependent task stays unsolved (test accuracy < SOLVED); transitions = positive_real claims
    that running parity stays unsolved at the test length."""
    if prediction == "growth" and value in ("overflow", "bounded", "normalised"):
        return "held" if (status == "diverged") == (value == "overflow") else "failed"
    if prediction == "order" and value == "invariant" and task in ORDER_DEPENDENT:
        return "held" if status == "diverged" or not accuracy >= SOLVED else "failed"
    if prediction == "transitions" and value == "positive_real" and task == "parity":
        return "held" if status == "diverged" or not accuracy >= SOLVED else "failed"
    return None
