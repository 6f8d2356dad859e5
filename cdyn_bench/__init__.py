"""cdyn-bench: coefficient-dynamics sequence models on synthetic recall tasks."""

__version__ = "0.1.0"

# Bumped by every change to what a run computes (a formula, a default, an initialisation, the data stream),
# not by one that alters only rounding (README, "Rounding is not a result": such a change passes the float64
# form-equivalence tests unchanged and its reruns land inside the committed cells' seed ranges). A record of
# another numerics version is rerun, never reused, and cdyn-report warns when a table mixes them.
# 2: zero-sum rows get zero coefficients; evolution parameters exempt from weight decay by mark;
#    DeltaNet presets normalise q; Mamba-2 gates, then normalises over the whole width; typed task
#    configs; MAD's fuzzy-recall test split and compression scoring.
# 3: the short convolution as shifted multiply-adds, the quadratic form's fused softmax and linear-readout
#    paths, the diagonal chunk scan without per-step gradient buffers, single chunks without state
#    parts, the last block's MLP at the scored positions only (all equal to rounding, bumped under the
#    earlier rule of bit-identical numbers); the gated preset runs the chunked form.
NUMERICS_VERSION = 3

# A form's own version (cdyn_bench.mixer.forms.FORMS), bumped instead of NUMERICS_VERSION when a change alters
# what only that form computes, e.g. a kernel whose reruns leave their cells' seed ranges (README, "Rounding is
# not a result"): it stales only the records whose blocks ran that form. Every form starts at 1; a record
# written before form versions were recorded ran every form at 1.
FORM_VERSIONS = {"quadratic": 1, "recurrent": 1, "chunked": 1, "scan": 1}


def numerics_stamp(version: int, forms: list[str], form_versions: dict[str, int]) -> str:
    """What computed a record, as one word: its numerics version, then each of its forms not at version 1
    ('3', '3 scan.2'). Two records of the same stamp ran the same numerics."""
    bumped = sorted({f"{form}.{form_versions.get(form, 1)}" for form in forms if form_versions.get(form, 1) != 1})
    return " ".join([str(version), *bumped])


def current_stamp(forms: list[str]) -> str:
    """The stamp today's code gives a run of these forms."""
    return numerics_stamp(NUMERICS_VERSION, forms, FORM_VERSIONS)
