"""The coefficient-dynamics token mixer: knobs, forms and the nn.Module.

The torch parts load on first use, so `cdyn_bench.mixer.config` (the knobs and their checks)
imports without torch.
"""

import importlib

_EXPORTS = {"CoeffMixer": "layer", "FORMS": "forms", "MixerConfig": "config", "coefficients": "forms",
            "quadratic": "forms", "reference": "forms"}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
