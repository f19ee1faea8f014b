"""Independent float64 restatements of LFP-SPEC §2 and §5, written connection by connection.

Nothing here calls spikelfp: each rule is the spec's table written out on explicit contribution
tensors ``Z[n, i, j] = w_ij a_i`` (``n`` indexes samples and, for convolutions, positions).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _sign(z: Tensor) -> Tensor:
    return torch.where(z >= 0, 1.0, -1.0).to(z.dtype)


def _stab(z: Tensor, eps: float) -> Tensor:
    return z + eps * _sign(z)


def _div(a: Tensor, b: Tensor) -> Tensor:
    return torch.where(b == 0, torch.zeros_like(a), a / torch.where(b == 0, torch.ones_like(b), b))


def connection_rule(name: str, Z: Tensor, U: Tensor, bias: Tensor | None, r: Tensor, eps=1e-6, alpha=2.0, beta=1.0):
    """Feedback ``R[n, i, j]`` per connection and update terms ``D[n, i, j]``, ``Db[n, j]``.

    Z: contributions ``w_ij a_i``; U: ``|w_ij| a_i``; bias: ``(J,)`` or None; r: ``(N, J)``.
    """
    N, _, J = Z.shape
    b = torch.zeros(N, J, dtype=Z.dtype) if bias is None else bias.expand(N, J)
    babs = b.abs()
    z = Z.sum(1) + b
    zp = Z.clamp(min=0).sum(1) + b.clamp(min=0)
    zn = Z.clamp(max=0).sum(1) + b.clamp(max=0)
    if name == "zero":
        c = _div(r, z)
        return Z * c[:, None], U * c[:, None], babs * c
    if name == "epsilon":
        c = r / _stab(z, eps)
        return Z * c[:, None], U * c[:, None], babs * c
    if name == "zplus-zminus-full":  # A.13 / Eq. 12 written case by case, ε = 0
        tot = zp.abs() + zn.abs()
        sr = _sign(z) * r
        fp = _div(zp.abs(), tot)[:, None] * _div(Z, zp[:, None].expand_as(Z))
        fn = -_div(zn.abs(), tot)[:, None] * _div(Z, zn[:, None].expand_as(Z))
        R = torch.where(Z >= 0, fp, fn) * sr[:, None]
        up = _div(zp.abs(), tot)[:, None] * _div(U, zp[:, None].expand_as(U))
        un = -_div(zn.abs(), tot)[:, None] * _div(U, zn[:, None].expand_as(U))
        D = torch.where(Z >= 0, up, un) * sr[:, None]
        bp = _div(zp.abs(), tot) * _div(babs, zp)
        bn = -_div(zn.abs(), tot) * _div(babs, zn)
        Db = torch.where(b >= 0, bp, bn) * sr
        return R, D, Db
    if name == "zplus-zminus":  # the reduced form with ε, Eq. 13
        c = _sign(z) * r / (zp.abs() + zn.abs() + eps)
        return Z * c[:, None], U * c[:, None], babs * c
    if name == "alpha-beta":
        sr = _sign(z) * r
        cp = alpha * sr / _stab(zp, eps)
        cn = -beta * sr / _stab(zn, eps)
        R = torch.where(Z >= 0, Z * cp[:, None], Z * cn[:, None])
        D = torch.where(Z >= 0, U * cp[:, None], U * cn[:, None])  # sign(w a) = sign(Z)
        Db = torch.where(b >= 0, babs * cp, babs * cn)
        return R, D, Db
    raise ValueError(name)


def linear_reference(name: str, x: Tensor, W: Tensor, bias: Tensor | None, r: Tensor, **kw):
    """``(r_in, Δw, Δb)`` of a Linear layer: ``Z[n, i, j] = x[n, i] W[j, i]``."""
    Z = x[:, :, None] * W.t()[None]
    U = x[:, :, None] * W.abs().t()[None]
    R, D, Db = connection_rule(name, Z, U, bias, r, **kw)
    return R.sum(2), D.sum(0).t(), (None if bias is None else Db.sum(0))


def conv2d_reference(name: str, x: Tensor, W: Tensor, bias: Tensor | None, r: Tensor, stride=1, padding=0, **kw):
    """``(r_in, Δw, Δb)`` of a Conv2d, through explicit patches (unfold), independent of autograd."""
    B, _, H, Wd = x.shape
    O, _, kh, kw_ = W.shape
    patches = F.unfold(x, (kh, kw_), padding=padding, stride=stride)  # (B, P, L)
    L = patches.shape[-1]
    Wm = W.reshape(O, -1)  # (O, P)
    a = patches.permute(0, 2, 1).reshape(B * L, -1)  # (N, P)
    Z = a[:, :, None] * Wm.t()[None]
    U = a[:, :, None] * Wm.abs().t()[None]
    rr = r.reshape(B, O, L).permute(0, 2, 1).reshape(B * L, O)
    R, D, Db = connection_rule(name, Z, U, bias, rr, **kw)
    r_patch = R.sum(2).reshape(B, L, -1).permute(0, 2, 1)
    r_in = F.fold(r_patch, (H, Wd), (kh, kw_), padding=padding, stride=stride)
    dW = D.sum(0).t().reshape(W.shape)
    return r_in, dW, (None if bias is None else Db.sum(0))


def lif_forward(I: Tensor, beta: float, theta: float, reset: str):
    """Spikes and membranes of LFP-SPEC §5, one step at a time."""
    T = I.shape[0]
    U = torch.zeros_like(I)
    S = torch.zeros_like(I)
    u_prev = torch.zeros_like(I[0])
    s_prev = torch.zeros_like(I[0])
    for t in range(T):
        if reset == "subtract":
            u = beta * u_prev + I[t] - theta * s_prev
        else:
            u = beta * (1 - s_prev) * u_prev + I[t]
        s = (u > theta).to(I.dtype)
        U[t], S[t] = u, s
        u_prev, s_prev = u, s
    return S, U


def lif_feedback(I: Tensor, r_S: Tensor, beta: float, theta: float, reset: str, eps=1e-6, carry="signed"):
    """``r_I`` of LFP-SPEC §5 by a plain reverse loop over ``t``."""
    S, U = lif_forward(I, beta, theta, reset)
    T = I.shape[0]
    r_I = torch.zeros_like(I)
    r_carry = torch.zeros_like(I[0])
    for t in range(T - 1, -1, -1):
        if t == 0:
            k = torch.zeros_like(I[0])
        elif reset == "subtract":
            k = beta * U[t - 1]
        else:
            k = beta * (1 - S[t - 1]) * U[t - 1]
        r_U = r_S[t] + r_carry
        D = I[t].abs() + k.abs() + eps
        r_I[t] = I[t] / D * r_U
        r_carry = (k.abs() if carry == "abs" else k) / D * r_U
    return r_I
