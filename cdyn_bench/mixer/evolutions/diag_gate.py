"""A_t = Diag(a_t) with one a_t per state channel from the token (GLA, Mamba's S6)."""

from __future__ import annotations

from cdyn_bench.mixer.evolutions.kind import GatedKind


class DiagGate(GatedKind):
    name = "diag_gate"
    summary = "A_t = Diag(a_t), a_t input-dependent per channel"
    factor = "diagonal"
    input_dependent = True


KIND = DiagGate()
