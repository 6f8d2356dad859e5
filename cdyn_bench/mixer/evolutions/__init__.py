"""The evolution structures A_t: one module per kind (kind.py says what a kind holds), and their registry.

Adding a kind is one module with a `KIND` object and one line in `EVOLUTIONS` below (or `register(kind)`
at run time, as the tests do); the config checks, `cdyn-run --help`, the principle card, the memory
estimate and the generic tests read this table. Torch-free at import.
"""

from __future__ import annotations

from cdyn_bench.mixer.evolutions import diag_gate, fixed, gated_householder, householder, identity, learned_scalar
from cdyn_bench.mixer.evolutions import rotation, scalar_gate
from cdyn_bench.mixer.evolutions.kind import GATE_KNOBS, EvolutionKind
from cdyn_bench.registry import lookup

__all__ = ["EVOLUTIONS", "GATE_KNOBS", "EvolutionKind", "evolution", "register"]

EVOLUTIONS: dict[str, EvolutionKind] = {
    kind.name: kind for kind in (
        identity.KIND,
        fixed.KIND,
        learned_scalar.KIND,
        scalar_gate.KIND,
        diag_gate.KIND,
        householder.KIND,
        gated_householder.KIND,
        rotation.KIND,
    )
}


def evolution(name: str) -> EvolutionKind:
    """The kind called `name` (ConfigError with a did-you-mean when there is none)."""
    return lookup(EVOLUTIONS, "evolution A", name)


def register(kind: EvolutionKind) -> EvolutionKind:
    """Add a kind to the table (a new name only); returns it, so it can decorate or be kept."""
    if not kind.name or kind.name in EVOLUTIONS:
        raise ValueError(f"an evolution kind needs a new name; got {kind.name!r}")
    EVOLUTIONS[kind.name] = kind
    return kind
