"""The allowed names of every choice key (b, psi, phi, eta, gates, norms, forms, heads), torch-free; A's kinds
are a registry of objects (cdyn_bench.mixer.evolutions).

The config checks and `cdyn-run --help` read these tables; the modules that implement a choice
(cdyn_bench.mixer, cdyn_bench.model) key their functions by the same names, and a test checks
that the two agree.
"""

# The parametrisation of a learned A_t (the kinds of A themselves: cdyn_bench.mixer.evolutions).
GATES = ("sigmoid", "mamba", "mlstm")
GAMMA_HEADS = ("same", "retnet")
RATE_INITS = ("uniform", "s4d_real")

# Impulse b_j, feature map psi, readout phi, normaliser eta_i and its f.
INPUTS = ("key", "feature", "delta_B", "beta_key", "input_gate_key")
FEATURE_MAPS = ("none", "elu1", "relu", "exp", "softmax", "silu")
# The readout phi: name -> (where phi is zero, its sign), the facts the principle card reads; the functions are
# cdyn_bench.mixer.components.PHIS (a test checks the names agree).
PHI_FACTS = {
    "identity": ("hyperplane", "signed"),
    "exp": ("none", "positive"),
    "softplus": ("none", "positive"),
    "relu": ("half_space", "nonnegative"),
    "elu1": ("none", "positive"),
    "sigmoid": ("none", "positive"),
}
PHIS = tuple(PHI_FACTS)
NORMALISERS = ("one", "sum", "abs_sum", "learned", "mlstm")
ETA_FS = ("exp", "elu", "softplus", "sigmoid")
# Normalisers for which the state forms carry the causal sum and a per-row log scale m_i.
STABILISED = ("sum", "mlstm")

# Forms of computation.
FORM_NAMES = ("auto", "quadratic", "recurrent", "chunked", "scan")
STATE_FORMS = ("recurrent", "chunked", "scan")
STATE_NORMALISERS = ("one", "sum", "learned", "mlstm")

# Block extras and backbone.
# y's norm: per head (GroupNorm, RMSNorm), or RMSNorm over all heads together (Mamba-2).
OUT_NORMS = ("none", "group", "rms", "rms_width")
POS_EMBS = ("none", "learned", "rotary")
BLOCK_NORMS = ("layer", "rms", "none")
# task.readout, how cdyn_bench.model turns hidden states into logits: 'lm' reads each position's
# own state (causal LM); 'last_position' decodes every position from the last one (MAD's auto-encoder).
TASK_READOUTS = ("lm", "last_position")

# Training and running.
DECAY_RULES = ("matrices", "all")
DEVICES = ("auto", "cpu", "cuda")
WANDB_MODES = ("offline", "online", "disabled")
LOSS_ON = ("scored", "all")

# The largest magnitudes a run records at every evaluation and at a divergence, over layers, heads,
# positions and a few validation sequences (cdyn_bench.mixer.introspect.extremes): log |alpha_ij|,
# |q_i^T A_i...A_{j+1} b_j|, log |eta_i| and |log |lambda|| over the eigenvalues of A_t.
EXTREMES = ("log_alpha_max", "score_abs_max", "log_eta_max", "log_eig_abs_max")
