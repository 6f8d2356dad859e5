"""The coefficient-dynamics token mixer: knobs, forms and the nn.Module."""

from cdyn_bench.mixer.config import MixerConfig
from cdyn_bench.mixer.forms import FORMS, coefficients, quadratic
from cdyn_bench.mixer.layer import CoeffMixer

__all__ = ["CoeffMixer", "FORMS", "MixerConfig", "coefficients", "quadratic"]
