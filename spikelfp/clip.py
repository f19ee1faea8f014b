"""Adaptive clipping of updates and max-normalisation of feedback (A.6.3, A.6.4; LFP-SPEC §5)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = ["adaptive_", "max_normalize"]


@torch.no_grad()
def adaptive_(parameters: Iterable[Tensor] | Tensor, clipping: float = 0.06, eps: float = 1e-3) -> None:
    """Unit-wise adaptive clipping (Brock et al. 2021), in place on ``p.grad``.

    Each output unit's update (a row of a weight: index 0, all other dimensions together; each entry
    of a 1-d bias) is scaled down so that

    .. math:: \\|\\Delta_{row}\\| \\le \\lambda \\cdot \\max(\\|w_{row}\\|, \\epsilon)

    Rows already within the bound are untouched. Parameters without ``.grad`` are skipped.

    Parameters
    ----------
    parameters
        Parameters (or one tensor) whose ``.grad`` holds the update (``−Δp`` under LFP).
    clipping
        ``λ > 0``; the reference code used 0.06.
    eps
        Floor of the weight norm, so that zero-initialised rows can still move.
    """
    if not clipping > 0:
        raise ValueError(f"clipping must be > 0, got {clipping}")
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    for p in parameters:
        g = p.grad
        if g is None:
            continue
        if g.is_sparse:
            raise TypeError("adaptive clipping does not support sparse gradients")
        if p.dim() <= 1:
            w_norm, g_norm = p.abs(), g.abs()
        else:
            dims = tuple(range(1, p.dim()))
            w_norm = torch.linalg.vector_norm(p, dim=dims, keepdim=True)
            g_norm = torch.linalg.vector_norm(g, dim=dims, keepdim=True)
        max_norm = clipping * w_norm.clamp(min=eps)
        scale = max_norm / g_norm.clamp(min=1e-12)
        g.mul_(torch.where(g_norm > max_norm, scale, torch.ones_like(scale)))


def max_normalize(
    r: Tensor, layout: tuple[int, int] | None = None, per: str = "sample", inplace: bool = False
) -> Tensor:
    """Divide feedback by its maximum absolute value per sample (or over the batch); zero stays zero.

    Parameters
    ----------
    r
        Feedback. Without ``layout`` the batch is dimension 0.
    layout
        ``(T, B)`` for time-first spiking tensors: ``r`` is ``(T, B, …)`` or ``(T·B, …)``, and the
        maximum of sample ``b`` is taken over all steps and features.
    per
        ``"sample"`` (LFP-SPEC §5) or ``"batch"``: one maximum over the whole tensor, which keeps the
        samples' relative magnitudes (and so the decay of the feedback of learned samples).
    inplace
        Overwrite ``r`` (saves an allocation on the hot path).

    An empty ``r`` (an empty batch) is returned as it is.
    """
    if r.numel() == 0:  # an empty batch: nothing to divide
        return r
    if per == "batch":
        lo, hi = torch.aminmax(r)  # max |r| in one pass, without materialising |r|
        m = torch.maximum(hi, -lo)
        m = torch.where(m == 0, torch.ones_like(m), m)
        return r.div_(m) if inplace else r / m
    if per != "sample":
        raise ValueError(f"per must be 'sample' or 'batch', got {per!r}")
    if layout is None:
        flat = r.reshape(r.shape[0], -1)
        m = flat.abs().amax(dim=1, keepdim=True)
    else:
        steps, batch = layout
        if r.numel() % (steps * batch) != 0:
            raise ValueError(
                f"feedback of shape {tuple(r.shape)} does not fit the time-first layout (T={steps}, B={batch})"
            )
        flat = r.reshape(steps, batch, -1)
        m = flat.abs().amax(dim=(0, 2), keepdim=True)
    m = torch.where(m == 0, torch.ones_like(m), m)
    if inplace and r.is_contiguous():
        flat.div_(m)  # a view of r
        return r
    return (flat / m).reshape(r.shape)
