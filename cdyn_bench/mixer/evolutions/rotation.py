"""A_t = a_t Rot(theta_t): a scalar gate times rotations of each pair of state channels by data-dependent
angles, the real form of complex eigenvalues a_t e^(+-i theta) (Mamba-3's complex transitions, as
data-dependent rotary: cdyn_bench.mixer.frame)."""

from __future__ import annotations

from cdyn_bench.mixer.evolutions.kind import GatedKind
from cdyn_bench.registry import ConfigError


class Rotation(GatedKind):
    name = "rotation"
    summary = "A_t = a_t Rot(theta_t), pairs of channels turned by data-dependent angles (complex eigenvalues)"
    factor = "scalar"
    rotates = True
    input_dependent = True

    def check(self, cfg, n: int) -> None:
        if n % 2:
            raise ConfigError(f"model.mixer.A=rotation turns pairs of state channels: needs an even head_dim, got {n}")

    def build(self, cfg, d_model: int, n: int):
        from cdyn_bench.mixer.gates import RotationGate

        return RotationGate(cfg, d_model, n)

    def angles(self, gate, u, n_heads: int):
        return gate.angles(u, n_heads)

    def radius_bound(self, cfg) -> tuple[float, str]:
        return 1.0, f"a {cfg.gate} gate in (0, 1) times rotations (eigenvalues of modulus 1)"


KIND = Rotation()
