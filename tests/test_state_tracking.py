"""State tracking (issue 30): the group tables are groups, the targets are the running element, the test split is
the longer one, the last-position accuracy is what it says, and a Householder with beta up to 2 is computed by
every form and has the negative eigenvalues it promises."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from helpers import TINY, assert_close, compose, state_forms
from test_forms import LENGTHS, check_forms
from test_state import check_streaming

from cdyn_bench.data import TaskData
from cdyn_bench.mixer.introspect import inspect_model
from cdyn_bench.model import LanguageModel
from cdyn_bench.registry import ConfigError
from cdyn_bench.run import run
from cdyn_bench.tasks import TASKS, Examples
from cdyn_bench.tasks.state import GROUPS, multiplication_table, permutation_group
from cdyn_bench.train import evaluate

ORDERS = {"S3": 6, "A5": 60, "S5": 120, "Z2": 2, "Z3": 3, "Z7": 7}


@pytest.mark.parametrize("group", list(ORDERS))
def test_each_table_is_a_group(group):
    table = multiplication_table(group)
    n = ORDERS[group]
    assert table.shape == (n, n) and table.min() >= 0 and table.max() < n  # closed
    a, b, c = np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij")
    assert (table[table[a, b], c] == table[a, table[b, c]]).all()  # associative
    identity = [e for e in range(n) if (table[e] == np.arange(n)).all() and (table[:, e] == np.arange(n)).all()]
    assert len(identity) == 1 and all((table[g] == identity[0]).any() for g in range(n))  # one identity, inverses
    assert all(sorted(row) == list(range(n)) for row in table)  # Latin square: each product once


def test_the_permutation_groups_are_s3_a5_s5():
    assert permutation_group("S5") == tuple(itertools.permutations(range(5)))
    a5 = set(permutation_group("A5"))
    assert len(a5) == 60 and a5 < set(permutation_group("S5"))
    composed = {tuple(q[p[i]] for i in range(5)) for p in a5 for q in a5}
    assert composed == a5  # A5 is closed in S5
    assert not multiplication_table("S3").T.tolist() == multiplication_table("S3").tolist()  # S3 is not abelian


def running(tokens: np.ndarray, compose_two) -> np.ndarray:
    """The running product, written out step by step."""
    out = []
    for row in tokens:
        state, states = None, []
        for g in row:
            state = g if state is None else compose_two(state, g)
            states.append(state)
        out.append(states)
    return np.array(out)


@pytest.mark.parametrize("task, params", [("parity", {}), ("modular_sum", {"modulus": 5}),
                                          *(("group_word", {"group": g}) for g in GROUPS)])
def test_the_target_is_the_running_element_at_every_position(task, params):
    ex = TASKS[task](20, np.random.default_rng(1), seq_len=17, test_seq_len=40, **params)
    assert ex.inputs.shape == ex.targets.shape == (20, 17) and (ex.targets != -100).all()
    assert ex.train_targets is ex.targets
    if task == "parity":
        assert (ex.targets == np.cumsum(ex.inputs, axis=1) % 2).all()
    elif task == "modular_sum":
        assert (ex.targets == np.cumsum(ex.inputs, axis=1) % 5).all()
    else:
        perms = permutation_group(params["group"])
        index = {p: i for i, p in enumerate(perms)}
        # (a * b) applies a, then b: the composed permutation is i -> b(a(i)).
        expected = running(ex.inputs, lambda a, b: index[tuple(perms[b][perms[a][i]] for i in range(len(perms[a])))])
        assert (ex.targets == expected).all()


def test_the_test_split_is_longer_and_the_splits_are_disjoint():
    cfg = compose("task=group_word", "task.group=S3", "task.seq_len=16", "task.test_seq_len=64", "task.num_val=50",
                  "task.num_test=50").task
    data = TaskData(cfg, seed=0, batch_size=8)
    assert data.val.inputs.shape == (50, 16) and data.test.inputs.shape == (50, 64)
    assert data.train_batch()[0].shape == (8, 16) and data.leaked == 0
    assert not {r.tobytes() for r in data.val.inputs} & {r.tobytes() for r in data.train_batch()[0]}
    with pytest.raises(ConfigError, match="task.test_seq_len=8: must be at least seq_len"):
        compose("task=parity", "task.seq_len=16", "task.test_seq_len=8")
    with pytest.raises(ConfigError, match="task.group='D4'"):
        compose("task=group_word", "task.group=D4")


class Echo(torch.nn.Module):
    """Predicts each scored position's own input token (one-hot logits over `vocab` classes)."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, inputs: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(inputs[select], self.vocab).float()


def test_last_accuracy_is_the_accuracy_at_each_sequences_last_scored_position():
    rng = np.random.default_rng(3)
    inputs = rng.integers(0, 2, size=(30, 9))
    targets = rng.integers(0, 2, size=(30, 9))
    targets[:, 7:] = np.where(rng.random((30, 2)) < 0.5, -100, targets[:, 7:])  # the last scored position varies
    last = np.array([np.nonzero(t != -100)[0].max() for t in targets])
    expected = float(np.mean(inputs[np.arange(30), last] == targets[np.arange(30), last]))
    got = evaluate(Echo(2), Examples(inputs, targets, targets), batch_size=7, device=torch.device("cpu"))
    assert got["last_accuracy"] == pytest.approx(expected)
    scored = targets != -100
    assert got["accuracy"] == pytest.approx(float(np.mean(inputs[scored] == targets[scored])))


def test_a_parity_run_records_its_last_position_accuracy_and_card(tmp_path):
    result = run(compose(*(o for o in TINY if not o.startswith("task.")), "task=parity", "task.seq_len=16", "task.test_seq_len=64", "task.num_val=32",
                         "task.num_test=32"), tmp_path)
    assert result.status == "completed" and 0.0 <= result.metrics["test_last_accuracy"] <= 1.0
    assert result.principles["transitions"] == "positive_real"


@pytest.mark.parametrize("A", ["householder", "gated_householder"])
@pytest.mark.parametrize("b", ["beta_key", "key"])
def test_every_form_computes_a_householder_with_beta_up_to_two(A, b):
    cfg = compose("model.d_model=8", "model.mixer.n_heads=2", "model.mixer.head_dim=3", "model.mixer.chunk_size=3",
                  f"model.mixer.A={A}", f"model.mixer.b={b}", "model.mixer.beta_max=2").model.mixer
    assert "beta_max" not in cfg.inactive()
    for T in LENGTHS:
        check_forms(cfg, 8, T, state_forms(cfg))


def test_beta_up_to_two_gives_negative_eigenvalues_and_the_default_keeps_the_identity():
    model = LanguageModel(compose("model=deltanet", "model.d_model=16", "model.mixer.beta_max=2").model, 11)
    with torch.no_grad():  # push beta_t = 2 sigmoid(w^T u) towards 2
        for block in model.blocks:
            block.mixer.evolution.beta.weight.add_(0.5)
    seen = inspect_model(model, torch.randint(0, 11, (2, 9), generator=torch.Generator().manual_seed(0)))[0]
    assert seen["eigenvalues"].min() < 0 and seen["eigenvalues"].min() >= -1
    assert "beta_max" in compose("model=deltanet").model.mixer.inactive()  # beta_max = 1: hashes as before the knob
    with pytest.raises(ConfigError, match="model.mixer.beta_max=3.0: need 0 < beta_max <= 2"):
        compose("model=deltanet", "model.mixer.beta_max=3")


def test_the_card_says_which_transitions_can_flip_the_state():
    from cdyn_bench.principles import card_record

    def transitions(*overrides):
        return card_record(compose("task=parity", *overrides))["transitions"]

    assert transitions("model=deltanet", "model.mixer.beta_max=2") == "signed_real"
    assert transitions("model=deltanet") == transitions("model=mamba2") == "positive_real"
    assert transitions("model=softmax") == "no_state"


def rotation_matrices(theta: torch.Tensor) -> torch.Tensor:
    """(..., n, n) block-diagonal Rot(theta) for angles (..., n/2): pair p of channels turned by theta_p."""
    n = 2 * theta.shape[-1]
    out = theta.new_zeros(*theta.shape[:-1], n, n)
    c, s = torch.cos(theta), torch.sin(theta)
    out[..., 0::2, 0::2] = torch.diag_embed(c)
    out[..., 0::2, 1::2] = torch.diag_embed(-s)
    out[..., 1::2, 0::2] = torch.diag_embed(s)
    out[..., 1::2, 1::2] = torch.diag_embed(c)
    return out


def test_a_rotating_a_is_the_recurrence_with_its_rotation_matrices_written_out():
    """S_t = a_t Rot(theta_t) S_(t-1) + b_t v_t^T, y_t = S_t^T q_t, stepped with explicit n x n matrices in float64,
    equals the mixer's change of frame (data-dependent rotary) in every form."""
    from test_forms import perturb

    from cdyn_bench.mixer import FORMS, CoeffMixer

    cfg = compose("model.d_model=8", "model.mixer.n_heads=2", "model.mixer.head_dim=4", "model.mixer.A=rotation",
                  "model.mixer.chunk_size=3").model.mixer
    torch.manual_seed(0)
    mixer = CoeffMixer(8, cfg)
    perturb(mixer, scale=3.0)  # angles well away from 0
    mixer = mixer.double()
    u = torch.randn(2, 11, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        q, k, v = mixer.qkv(u)
        evolution, dt, beta = mixer.evolution(u, k)
        b = mixer.impulse(k, dt, beta)
        rot = rotation_matrices(evolution.angles)  # (B, T, H, n, n)
        a = torch.exp(evolution.log_a)  # (B, T, H)
        S = q.new_zeros(2, 2, 4, v.shape[-1])
        ys = []
        for t in range(11):
            S = a[:, t, :, None, None] * rot[:, t] @ S + b[:, t, :, :, None] * v[:, t, :, None, :]
            ys.append(torch.einsum("bhn,bhnd->bhd", q[:, t], S))
        expected = torch.stack(ys, 1)
        assert evolution.angles.abs().max() > 0.5
        qf, bf, vf, framed, eta = mixer.components(u)
        for form in ("quadratic", "recurrent", "chunked", "scan"):
            options = {"chunk_size": 3} if form == "chunked" else {}
            y = FORMS[form](qf, bf, vf, framed, "identity", "one", eta, **options)
            assert_close(form, expected, y, 1e-10)


@pytest.mark.parametrize("knobs", [("phi=identity", "eta=one"), ("phi=identity", "eta=learned", "gate=mamba", "b=delta_B"),
                                   ("phi=exp", "eta=sum"), ("phi=identity", "eta=mlstm", "b=input_gate_key")],
                         ids="-".join)
def test_every_form_and_the_stream_compute_a_rotating_a(knobs):
    cfg = compose("model.d_model=8", "model.mixer.n_heads=2", "model.mixer.head_dim=4", "model.mixer.A=rotation",
                  "model.mixer.chunk_size=3", *(f"model.mixer.{k}" for k in knobs))
    forms = state_forms(cfg.model.mixer) if cfg.model.mixer.phi == "identity" else ["quadratic"]
    # Not T = 1: one token's query and impulse turn by the same angle, so the angles' gradient is exactly 0 in
    # exact arithmetic and rounding noise in each precision, which no relative error can compare.
    for T in [T for T in LENGTHS if T > 1]:
        check_forms(cfg.model.mixer, 8, T, forms)
    check_streaming(cfg.model, scale=3.0)
    with pytest.raises(ConfigError, match="needs an even head_dim"):
        compose("model.mixer.A=rotation", "model.mixer.head_dim=3")


def householder_products(beta: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """(..., n, n) A'_t = H_h ... H_1 written out, H_m = I - beta_m k_m k_m^T, from beta (..., h), k (..., h, n)."""
    n = direction.shape[-1]
    out = torch.eye(n, dtype=direction.dtype).expand(*beta.shape[:-1], n, n)
    for m in range(beta.shape[-1]):
        k = direction[..., m, :]
        out = (torch.eye(n, dtype=k.dtype) - beta[..., m, None, None] * k[..., :, None] * k[..., None, :]) @ out
    return out


@pytest.mark.parametrize("A", ["householder", "gated_householder"])
def test_a_product_of_householders_is_the_recurrence_with_its_matrices_written_out(A):
    """S_t = a_t H_{t,h} ... H_{t,1} S_(t-1) + b_t v_t^T, y_t = S_t^T q_t, stepped with explicit n x n matrices in
    float64, equals the quadratic and the recurrent form."""
    from test_forms import perturb

    from cdyn_bench.mixer import FORMS, CoeffMixer

    cfg = compose("model.d_model=8", "model.mixer.n_heads=2", "model.mixer.head_dim=4", f"model.mixer.A={A}",
                  "model.mixer.householders=3", "model.mixer.beta_max=2", "model.mixer.b=beta_key").model.mixer
    torch.manual_seed(0)
    mixer = CoeffMixer(8, cfg)
    perturb(mixer, scale=2.0)
    mixer = mixer.double()
    u = torch.randn(2, 9, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        q, b, v, evolution, eta = mixer.components(u)
        assert evolution.beta.shape == (2, 9, 2, 3) and evolution.direction.shape == (2, 9, 2, 3, 4)
        matrices = householder_products(evolution.beta, evolution.direction)  # (B, T, H, n, n)
        a = torch.exp(evolution.log_a) if evolution.log_a is not None else torch.ones(2, 9, 2, dtype=u.dtype)
        S = q.new_zeros(2, 2, 4, v.shape[-1])
        ys = []
        for t in range(9):
            S = a[:, t, :, None, None] * matrices[:, t] @ S + b[:, t, :, :, None] * v[:, t, :, None, :]
            ys.append(torch.einsum("bhn,bhnd->bhd", q[:, t], S))
        expected = torch.stack(ys, 1)
        for form in ("quadratic", "recurrent", "chunked"):
            assert_close(form, expected, FORMS[form](q, b, v, evolution, "identity", "one", eta), 1e-10)
        # Chunks of 4 sub-steps round up to 6 (two tokens of 3 factors): five chunks, whole tokens each.
        assert_close("chunks", expected, FORMS["chunked"](q, b, v, evolution, "identity", "one", eta, chunk_size=4), 1e-10)


@pytest.mark.parametrize("knobs", [("A=householder", "b=beta_key", "beta_max=2"), ("A=gated_householder", "b=key"),
                                   ("A=householder", "b=beta_key", "phi=exp", "eta=sum")], ids="-".join)
def test_every_form_and_the_stream_compute_a_product_of_householders(knobs):
    cfg = compose("model.d_model=8", "model.mixer.n_heads=2", "model.mixer.head_dim=4", "model.mixer.householders=2",
                  "model.mixer.normalize_k=true", *(f"model.mixer.{k}" for k in knobs))
    forms = state_forms(cfg.model.mixer) if cfg.model.mixer.phi == "identity" else ["quadratic"]
    for T in LENGTHS:
        check_forms(cfg.model.mixer, 8, T, forms)
    if cfg.model.mixer.phi == "identity":
        check_streaming(cfg.model)


@pytest.mark.parametrize("knobs", [("A=gated_householder", "b=input_gate_key", "eta=mlstm", "householders=3"),
                                   ("A=householder", "b=beta_key", "beta_max=2", "eta=learned", "householders=2")],
                         ids="-".join)
def test_the_chunked_product_keeps_the_row_scales_of_the_normalisers(knobs):
    # Its sub-steps without input must not enter a row's scale m (mLSTM's floor exp(-m) reads it).
    cfg = compose("model.d_model=8", "model.mixer.n_heads=2", "model.mixer.head_dim=4", "model.mixer.normalize_k=true",
                  *(f"model.mixer.{k}" for k in knobs))
    for T in (7, 64):
        check_forms(cfg.model.mixer, 8, T, ["chunked"])


def test_a_product_of_householders_is_refused_where_it_cannot_run_and_hashes_as_before_at_one():
    assert compose("model=deltanet", "model.mixer.householders=2").model.mixer.resolved_form() == "recurrent"
    assert "householders" in compose("model=deltanet").model.mixer.inactive()
    assert "householders" not in compose("model=deltanet", "model.mixer.householders=2").model.mixer.inactive()
    for overrides, says in [(("model=deltanet", "model.mixer.householders=2", "model.mixer.form=scan"),
                             "model.mixer.form=scan needs an elementwise A"),
                            (("model=gated", "model.mixer.householders=2"), "model.mixer.householders=2 multiplies"),
                            (("model=deltanet", "model.mixer.householders=0"), "need 1 <= householders <= 16")]:
        with pytest.raises(ConfigError, match=says) as err:
            compose(*overrides)
        assert "\n" not in str(err.value)


def test_two_reflections_rotate_and_the_card_says_a_product_carries_permutations():
    from cdyn_bench.mixer.introspect import eigenvalues
    from cdyn_bench.mixer.components import Evolution
    from cdyn_bench.principles import card_record

    angle = 0.7  # two reflections (beta = 2) whose normals are `angle` apart: a rotation by 2 * angle in their plane
    k = torch.tensor([[1.0, 0.0, 0.0], [np.cos(angle), np.sin(angle), 0.0]], dtype=torch.float64)
    evolution = Evolution(beta=torch.full((1, 1, 1, 2), 2.0, dtype=torch.float64), direction=k.view(1, 1, 1, 2, 3))
    lam = eigenvalues(evolution, torch.Size([1, 1, 1, 3]), k)
    assert torch.allclose(lam.abs(), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(torch.sort(lam.angle().abs().flatten()).values,
                          torch.tensor([0.0, 2 * angle, 2 * angle], dtype=torch.float64))
    card = card_record(compose("task=group_word", "model=deltanet", "model.mixer.householders=4",
                               "model.mixer.beta_max=2"))
    assert card["transitions"] == "reflection_products"
    assert card_record(compose("task=parity", "model=deltanet", "model.mixer.householders=2"))["transitions"] == "complex"
