"""CoeffMixer: projections, short convolution and gates around one form of the mixer."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cdyn_bench.choices import STABILISED, STATE_FORMS, STATE_NORMALISERS
from cdyn_bench.mixer.components import ETA_FS, FEATURE_MAPS, Evolution
from cdyn_bench.mixer.config import MixerConfig
from cdyn_bench.mixer.evolution_params import EvolutionParams
from cdyn_bench.mixer.forms import FORMS, coefficients
from cdyn_bench.mixer.frame import in_frame
from cdyn_bench.mixer.stream import Cache, cached_rows


class Rotation(torch.autograd.Function):
    """x (B, T, H, n) with each pair of channels (x1, x2) = (x[2i], x[2i+1]) turned by its angle:
    (x1 cos - x2 sin, x1 sin + x2 cos), for cos, sin (1, T, 1, n/2); its gradient is the turn back,
    (g1 cos + g2 sin, g2 cos - g1 sin). Both are written straight into the interleaved result: the same
    products and sums that autograd takes through slices and a stack, without their zero-filled and
    concatenated copies."""

    @staticmethod
    def forward(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        return Rotation.turn(x, cos, sin)

    @staticmethod
    def setup_context(ctx, inputs: tuple[Tensor, Tensor, Tensor], output: Tensor) -> None:
        ctx.save_for_backward(*inputs[1:])

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        cos, sin = ctx.saved_tensors
        return Rotation.turn(grad, cos, -sin), None, None

    @staticmethod
    def turn(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        x1, x2 = x[..., 0::2], x[..., 1::2]
        out = x.new_empty(x.shape)
        torch.sub(x1 * cos, x2 * sin, out=out[..., 0::2])
        torch.add(x1 * sin, x2 * cos, out=out[..., 1::2])
        return out


def rotate(x: Tensor, base: float = 10000.0, start: int = 0) -> Tensor:
    """Rotary position embedding of x (B, T, H, n) at positions start.., over pairs of channels; n even."""
    T, n = x.shape[1], x.shape[-1]
    freqs = base ** (-torch.arange(0, n, 2, device=x.device, dtype=x.dtype) / n)
    angles = torch.arange(start, start + T, device=x.device, dtype=x.dtype)[:, None] * freqs  # (T, n/2)
    return Rotation.apply(x, angles.cos()[None, :, None], angles.sin()[None, :, None])


def shifted_sum(x: Tensor, weight: Tensor, start: Tensor | None = None, reverse: bool = False) -> Tensor:
    """start + sum_d weight[k-1-d] * x shifted d steps later in time (zero where it has no value) for
    x (B, T, C), weight (k, C); with reverse, shifted d steps earlier."""
    k, T = weight.shape[0], x.shape[1]
    y = x * weight[k - 1] if start is None else torch.addcmul(start, x, weight[k - 1])
    for d in range(1, min(k, T)):
        if reverse:
            y[:, :T - d].addcmul_(x[:, d:], weight[k - 1 - d])
        else:
            y[:, d:].addcmul_(x[:, :T - d], weight[k - 1 - d])
    return y


class CausalConv(torch.autograd.Function):
    """Depthwise causal convolution of x (B, T, C) with weight (k, C) and bias (C,), as k shifted
    multiply-adds: y_t = bias + sum_d w_{k-1-d} x_{t-d} (x zero before the start), with its backward
    written the same way: dx_t = sum_d w_{k-1-d} dy_{t+d} (dy zero after the end) and
    dw_{k-1-d} = sum_{b,t} dy_t x_{t-d}. It equals nn.Conv1d(groups=C, padding=k-1) cut to T (a test
    checks values and gradients); the grouped mkldnn kernel that computes it otherwise is several
    times slower, and a padded copy costs as much as the arithmetic. Written in the form torch.func
    can batch (vmap over an ensemble of models)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        return shifted_sum(x, weight, bias.expand_as(x))

    @staticmethod
    def setup_context(ctx, inputs: tuple[Tensor, Tensor, Tensor], output: Tensor) -> None:
        x, weight, _ = inputs
        ctx.save_for_backward(x, weight)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x, weight = ctx.saved_tensors
        k, T = weight.shape[0], x.shape[1]
        grad_x = shifted_sum(grad, weight, reverse=True)
        grad_weight = torch.stack([(grad[:, d:] * x[:, :T - d]).sum((0, 1)) if d < T else weight.new_zeros(x.shape[-1])
                                   for d in range(k - 1, -1, -1)])
        return grad_x, grad_weight, grad.sum((0, 1))


def causal_conv(x: Tensor, conv: nn.Conv1d) -> Tensor:
    """conv (a depthwise nn.Conv1d holding the parameters) applied causally to x (B, T, C)."""
    return CausalConv.apply(x, conv.weight[:, 0].t().contiguous(), conv.bias)


class HeadRMSNorm(nn.Module):
    """RMSNorm over each head's values (N, H*dv) at every position; the learned scales are shared by the heads."""

    def __init__(self, n_heads: int, dv: int):
        super().__init__()
        self.norm = nn.RMSNorm(dv, eps=1e-5)
        self.n_heads = n_heads

    def forward(self, y: Tensor) -> Tensor:
        return self.norm(y.unflatten(-1, (self.n_heads, -1))).flatten(-2)


class CoeffMixer(nn.Module):
    """One coefficient-dynamics token mixer with H heads of state size n (see forms.py)."""

    def __init__(self, d_model: int, cfg: MixerConfig, rotary: bool = False):
        super().__init__()
        self.cfg, self.rotary = cfg, rotary
        self.n, self.dv = cfg.dims(d_model)
        H = cfg.n_heads
        self.qk_heads = 1 if cfg.share_qk else H
        width = 2 * self.qk_heads * self.n + H * self.dv
        self.proj = nn.Linear(d_model, width, bias=False)
        self.conv = (nn.Conv1d(width, width, cfg.conv_size, groups=width, padding=cfg.conv_size - 1)
                     if cfg.conv_size else None)
        self.evolution = EvolutionParams(cfg, d_model, self.n)
        self.eta_proj = nn.Linear(d_model, H) if cfg.eta == "learned" else None
        self.out_gate = nn.Linear(d_model, H * self.dv, bias=False) if cfg.out_gate else None
        self.out_norm = {"group": lambda: nn.GroupNorm(H, H * self.dv), "rms": lambda: HeadRMSNorm(H, self.dv),
                         "rms_width": lambda: nn.RMSNorm(H * self.dv, eps=1e-5), "none": lambda: None}[cfg.out_norm]()
        self.out = nn.Linear(H * self.dv, d_model, bias=False)
        self.form = cfg.resolved_form()
        options = {"chunk_size": cfg.chunk_size} if self.form == "chunked" else {}
        self.run_form = functools.partial(FORMS[self.form], **options)

    def qkv(self, u: Tensor, tail: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """q, k (B, T, H, n) and v (B, T, H, dv) after projection and short convolution; `tail`: the
        projected inputs (B, k-1, width) before u when a sequence continues (zeros: its start)."""
        B, T, _ = u.shape
        x = self.proj(u)
        if self.conv is not None:
            # Sliced only after a tail: the backward of a slice writes a zero tensor and copies into it.
            x = F.silu(causal_conv(x, self.conv) if tail is None else causal_conv(torch.cat([tail, x], 1), self.conv)[:, -T:])
        H, Hk, n = self.cfg.n_heads, self.qk_heads, self.n
        q, k, v = x.split([Hk * n, Hk * n, H * self.dv], dim=-1)
        q, k = q.view(B, T, Hk, n).expand(B, T, H, n), k.view(B, T, Hk, n).expand(B, T, H, n)
        return q, k, v.view(B, T, H, self.dv)

    def impulse(self, k: Tensor, dt: Tensor | None, beta: Tensor | None) -> Tensor:
        """b_j from the key (the mLSTM input gate stays in the evolution, in log space)."""
        source = self.cfg.b
        b = dt[..., None] * k if source == "delta_B" else beta[..., None] * k if source == "beta_key" else k
        return b / math.sqrt(self.n) if self.cfg.scale_b else b

    def components(self, u: Tensor, cache: Cache | None = None) -> tuple[Tensor, Tensor, Tensor, Evolution, Tensor | None]:
        """q, b (B, T, H, n), v (B, T, H, dv), A_t and the learned eta (B, T, H) from u (B, T, d); after the
        prefix `cache` holds (positions and convolution inputs), if given."""
        q, k, v = self.qkv(u, cache.conv if cache is not None else None)
        if self.rotary:
            start = cache.position if cache is not None else 0
            q, k = rotate(q, start=start), rotate(k, start=start)
        psi = FEATURE_MAPS[self.cfg.psi]
        q = psi(q)
        k = psi(k) if self.cfg.b == "feature" else k
        if self.cfg.normalize_k:
            k = F.normalize(k, dim=-1)
        if self.cfg.normalize_q:
            q = F.normalize(q, dim=-1)
        evolution, dt, beta = self.evolution(u, k)
        eta = None
        if self.eta_proj is not None:
            eta = torch.exp(ETA_FS[self.cfg.eta_f](self.eta_proj(u)))
        b = self.impulse(k, dt, beta)
        if evolution.angles is not None:
            q, b, evolution = in_frame(q, b, evolution, cache.angle if cache is not None else None)
        return q, b, v, evolution, eta

    def forward(self, u: Tensor) -> Tensor:
        q, b, v, evolution, eta = self.components(u)
        return self.finish(self.run_form(q, b, v, evolution, self.cfg.phi, self.cfg.eta, eta), u)

    @property
    def finite_state(self) -> bool:
        """Whether the mixer continues a sequence from a finite State (else from a KV cache)."""
        return self.cfg.phi == "identity" and self.cfg.eta in STATE_NORMALISERS

    def step(self, u: Tensor, cache: Cache | None = None) -> tuple[Tensor, Cache]:
        """Continue a sequence: the output for the tokens u (B, T, d) that follow the prefix in `cache`
        (None: the sequence starts here), and the cache after them. A prefix then its continuation equals
        forward() over the whole sequence; T = 1 is one generation step."""
        cache = cache if cache is not None else Cache()
        q, b, v, evolution, eta = self.components(u, cache)
        new = Cache(position=cache.position + u.shape[1], scaled=self.cfg.eta in STABILISED)
        if evolution.frame is not None:
            new.angle = evolution.frame[:, -1]
        if self.conv is not None:
            x = self.proj(u)
            tail = cache.conv if cache.conv is not None else x.new_zeros(x.shape[0], self.cfg.conv_size - 1, x.shape[-1])
            history = torch.cat([tail, x], 1)
            new.conv = history[:, history.shape[1] - (self.cfg.conv_size - 1):]
        if self.finite_state:
            form = "recurrent" if u.shape[1] == 1 else self.form if self.form in STATE_FORMS else "chunked"
            options = {"chunk_size": self.cfg.chunk_size} if form == "chunked" else {}
            y, new.state = FORMS[form](q, b, v, evolution, self.cfg.phi, self.cfg.eta, eta, initial=cache.state,
                                       return_state=True, **options)
        else:
            y, new.kv = cached_rows(q, b, v, evolution, self.cfg.phi, self.cfg.eta, eta, cache.kv)
        return self.finish(y, u), new

    def finish(self, y: Tensor, u: Tensor) -> Tensor:
        """The block output from the heads' y (B, T, H, dv): norm and gate (in the configured order), projection."""
        y = y.flatten(2)  # (B, T, H*dv)
        if self.cfg.norm_before_gate:
            return self.out(self.gated(self.normed(y), u))
        return self.out(self.normed(self.gated(y, u)))

    def normed(self, y: Tensor) -> Tensor:
        return y if self.out_norm is None else self.out_norm(y.flatten(0, 1)).view_as(y)

    def gated(self, y: Tensor, u: Tensor) -> Tensor:
        return y if self.out_gate is None else y * F.silu(self.out_gate(u))

    def coefficients(self, u: Tensor) -> Tensor:
        """alpha (B, H, T, T) of this mixer for block input u."""
        q, b, _, evolution, eta = self.components(u)
        return coefficients(q, b, evolution, self.cfg.phi, self.cfg.eta, eta)

    def state_size(self, seq_len: int) -> int:
        """Floats per sequence needed at inference (what step()'s Cache holds; a test checks they agree):
        the recurrent state (S, the causal sum z and its log scale m) when phi is linear, else the KV cache
        (b_j and v_j, and with a scalar A or input gate each key's log offset and the running log decay);
        plus the short convolution's last inputs."""
        H, n, dv, cfg = self.cfg.n_heads, self.n, self.dv, self.cfg
        conv = (cfg.conv_size - 1) * self.proj.out_features if cfg.conv_size else 0
        angle = H * (n // 2) if self.evolution.kind.rotates else 0  # a rotating A's cumulative angles
        conv += angle
        if self.finite_state:
            return conv + H * n * dv + (H * (n + 1) if cfg.eta in STABILISED else 0)
        decays = (self.evolution.kind.factor == "scalar" and not self.evolution.kind.householder
                  or cfg.b == "input_gate_key")
        return conv + seq_len * H * (n + dv) + ((seq_len + 1) * H if decays else 0)
