"""A_t = a_t I with a_t from the token (Mamba-2, mLSTM's forget gate, the `gated` preset)."""

from __future__ import annotations

from cdyn_bench.mixer.evolutions.kind import GatedKind


class ScalarGate(GatedKind):
    name = "scalar_gate"
    summary = "A_t = a_t I, a_t input-dependent"
    factor = "scalar"
    input_dependent = True


KIND = ScalarGate()
