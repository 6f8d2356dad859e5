"""A_t = gamma I, one fixed gamma for every head, or RetNet's gamma_h = 1 - 2^(-5-h) per head (gamma_heads=retnet)."""

from __future__ import annotations

from cdyn_bench.mixer.evolutions.kind import EvolutionKind


class Fixed(EvolutionKind):
    name = "fixed"
    summary = "A_t = gamma I (gamma_heads=retnet: RetNet's 1 - 2^(-5-h) per head)"
    factor = "scalar"
    knobs = ("gamma", "gamma_heads")

    def inactive(self, cfg) -> set[str]:
        return super().inactive(cfg) | ({"gamma"} if cfg.gamma_heads == "retnet" else set())

    def build(self, cfg, d_model: int, n: int):
        from cdyn_bench.mixer.gates import FixedDecay

        return FixedDecay(cfg)

    def decay(self, gate, u, n_heads: int):
        return gate(u), None

    def is_identity(self, cfg) -> bool:
        return cfg.gamma_heads == "same" and cfg.gamma == 1.0

    def radius_bound(self, cfg) -> tuple[float, str]:
        if cfg.gamma_heads == "retnet":
            return 1 - 2.0 ** (-5 - (cfg.n_heads - 1)), "RetNet's gammas 1 - 2^(-5-h) < 1"
        return cfg.gamma, f"A = {cfg.gamma} I"


KIND = Fixed()
