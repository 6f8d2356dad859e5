"""A_t = I - beta_t k_t k_t^T, a Householder-like reflection along the normalised key (DeltaNet)."""

from __future__ import annotations

from cdyn_bench.mixer.evolutions.kind import EvolutionKind


class Householder(EvolutionKind):
    name = "householder"
    summary = "A_t = I - beta_t k_t k_t^T (k_t L2-normalised)"
    householder = True

    def radius_bound(self, cfg) -> tuple[float, str]:
        return 1.0, f"I - beta k k^T with unit k and beta in (0, {cfg.beta_max:g}): eigenvalues 1 and 1 - beta"


KIND = Householder()
