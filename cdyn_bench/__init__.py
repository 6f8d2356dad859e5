"""cdyn-bench: coefficient-dynamics sequence models on synthetic recall tasks."""

__version__ = "0.1.0"

# Bumped by every change that alters what a run computes (a number in a record). A record of
# another numerics version is rerun, never reused, and cdyn-report warns when a table mixes them.
# 2: zero-sum rows get zero coefficients; evolution parameters exempt from weight decay by mark;
#    DeltaNet presets normalise q; Mamba-2 gates, then normalises over the whole width; typed task
#    configs; MAD's fuzzy-recall test split and compression scoring.
# 3: the short convolution as shifted multiply-adds, the quadratic form's fused softmax and linear-readout
#    paths, the diagonal chunk scan without per-step gradient buffers, single chunks without state
#    parts, the last block's MLP at the scored positions only (all equal to rounding); the gated preset
#    runs the chunked form.
NUMERICS_VERSION = 3
