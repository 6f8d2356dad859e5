"""A_t = I: nothing decays or moves; the coefficient of every past token is its score (attention, linear attention)."""

from __future__ import annotations

from cdyn_bench.mixer.evolutions.kind import EvolutionKind


class Identity(EvolutionKind):
    name = "identity"
    summary = "A_t = I"

    def is_identity(self, cfg) -> bool:
        return True

    def radius_bound(self, cfg) -> tuple[float, str]:
        return 1.0, "A = I"


KIND = Identity()
