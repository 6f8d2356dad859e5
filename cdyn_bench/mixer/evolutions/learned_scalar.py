"""A_t = a I with one learned a per head, the same at every token (a gate without a projection)."""

from __future__ import annotations

from cdyn_bench.mixer.evolutions.kind import GatedKind


class LearnedScalar(GatedKind):
    name = "learned_scalar"
    summary = "A_t = a I, one learned a per head"
    factor = "scalar"


KIND = LearnedScalar()
