"""A_t = a_t (I - beta_t k_t k_t^T): a scalar gate times the Householder part (Gated DeltaNet)."""

from __future__ import annotations

from cdyn_bench.mixer.evolutions.kind import GatedKind


class GatedHouseholder(GatedKind):
    name = "gated_householder"
    summary = "A_t = a_t (I - beta_t k_t k_t^T)"
    factor = "scalar"
    householder = True
    input_dependent = True


KIND = GatedHouseholder()
