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
