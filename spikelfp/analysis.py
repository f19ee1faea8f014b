"""Analysis of trained models, as in the paper's figures.

- :func:`sign_changes`: parameters whose sign differs between two checkpoints (Fig. 3 II/IV, Fig. 5 II);
- :func:`prune_magnitude` and :func:`pruning_curve`: accuracy against the fraction of weights pruned by
  magnitude, globally or per layer (Fig. 5 III);
- :func:`median_over_p75`: the median absolute weight normalised by the 75th percentile (Fig. 5 IV);
- :func:`parameter_mse`: mean squared difference between two checkpoints (Fig. A.6);
- :func:`input_signal`, :func:`shattering` and :func:`roughness`: the signal a method sends back to the
  input, how correlated it is between neighbouring inputs, and how much it oscillates (A.4; Balduzzi
  et al. 2017).

States are ``{name: tensor}`` mappings (``model.state_dict()``) or models.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import Tensor, nn

from .lfp.engine import LFP

__all__ = [
    "input_signal",
    "median_over_p75",
    "parameter_mse",
    "parameter_stats",
    "prune_magnitude",
    "pruning_curve",
    "roughness",
    "shattering",
    "sign_changes",
]

State = Mapping[str, Tensor] | nn.Module


def _state(s: State) -> dict[str, Tensor]:
    if isinstance(s, nn.Module):
        return {k: v.detach() for k, v in s.state_dict().items() if v.is_floating_point()}
    return {k: v.detach() for k, v in s.items() if torch.is_tensor(v) and v.is_floating_point()}


def _weights(s: State) -> dict[str, Tensor]:
    """The prunable weights: floating tensors with more than one dimension (not biases)."""
    return {k: v for k, v in _state(s).items() if v.dim() > 1}


def sign_changes(before: State, after: State) -> dict:
    """How many parameters changed sign (``sign`` with ``sign(0) = 0``) between two states.

    Returns ``{"total": int, "fraction": float, "per_tensor": {name: int}}``.
    """
    a, b = _state(before), _state(after)
    if a.keys() != b.keys():
        raise ValueError(f"the states hold different parameters: {sorted(a.keys() ^ b.keys())}")
    per = {k: int((torch.sign(a[k]) != torch.sign(b[k])).sum()) for k in a}
    count = sum(v.numel() for v in a.values())
    total = sum(per.values())
    return {"total": total, "fraction": total / max(count, 1), "per_tensor": per}


def parameter_mse(before: State, after: State) -> float:
    """Mean squared difference over all parameters of two states."""
    a, b = _state(before), _state(after)
    if a.keys() != b.keys():
        raise ValueError(f"the states hold different parameters: {sorted(a.keys() ^ b.keys())}")
    total = sum(float(((a[k].double() - b[k].double()) ** 2).sum()) for k in a)
    return total / max(sum(v.numel() for v in a.values()), 1)


def _quantile(sorted_values: Tensor, q: float) -> float:
    """Linear-interpolation quantile of an ascending 1-d tensor (numpy's default method)."""
    pos = q * (sorted_values.numel() - 1)
    lo = int(pos)
    hi = min(lo + 1, sorted_values.numel() - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def median_over_p75(state: State) -> float:
    """Median absolute weight divided by the 75th percentile of absolute weights (all weight tensors)."""
    w = torch.cat([v.abs().reshape(-1).double() for v in _weights(state).values()])
    if w.numel() == 0:
        raise ValueError("no weights in the state")
    w = w.sort().values
    p75 = _quantile(w, 0.75)
    return _quantile(w, 0.5) / p75 if p75 > 0 else float("nan")


def parameter_stats(state: State) -> dict[str, float]:
    """Per-epoch statistics the Trainer logs with ``--stats``."""
    w = torch.cat([v.abs().reshape(-1).double() for v in _weights(state).values()])
    return {
        "weight_median_over_p75": median_over_p75(state),
        "weight_abs_mean": float(w.mean()),
        "weight_zero_fraction": float((w == 0).double().mean()),
    }


def prune_magnitude(model: nn.Module, fraction: float, scope: str = "global") -> nn.Module:
    """A copy of ``model`` with the ``fraction`` smallest-magnitude weights set to zero.

    ``scope="global"`` ranks all weights together; ``"layer"`` prunes each weight tensor by the same
    fraction. Biases are kept. Ties at the threshold are broken by position, so exactly
    ``round(fraction · n)`` weights are pruned.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    pruned = copy.deepcopy(model)
    params = {n: p for n, p in pruned.named_parameters() if p.dim() > 1}
    with torch.no_grad():
        if scope == "global":
            flat = torch.cat([p.abs().reshape(-1) for p in params.values()])
            k = round(fraction * flat.numel())
            mask = torch.ones_like(flat, dtype=torch.bool)
            if k > 0:
                mask[torch.argsort(flat, stable=True)[:k]] = False
            offset = 0
            for p in params.values():
                n = p.numel()
                p.mul_(mask[offset : offset + n].view_as(p))
                offset += n
        else:
            for p in params.values():
                k = round(fraction * p.numel())
                if k > 0:
                    flat = p.view(-1)
                    flat[torch.argsort(flat.abs(), stable=True)[:k]] = 0.0
    return pruned


def pruning_curve(
    model: nn.Module,
    evaluate: Callable[[nn.Module], float],
    fractions: Iterable[float] = tuple(i / 10 for i in range(11)),
    scope: str = "global",
) -> list[tuple[float, float]]:
    """``[(fraction pruned, evaluate(pruned model)), …]`` for magnitude pruning."""
    return [(float(f), float(evaluate(prune_magnitude(model, f, scope)))) for f in fractions]


def input_signal(
    model: nn.Module,
    x: Tensor,
    method: str = "gradient",
    output_feedback: Tensor | None = None,
    normalize: str | None = "max-batch",
) -> Tensor:
    """The signal a method sends back to the input ``x`` (A.4): ``gradient`` or ``lfp-<composite>``.

    The output receives ``output_feedback`` (default: 1 at output unit 0). The signal leaving every
    layer is max-normalised as A.4 does, for gradients and LFP alike: ``"max-batch"`` (one maximum over
    all inputs, which keeps the signal's shape along the inputs), ``"max"`` (per input: a 1-d input's
    signal becomes its sign) or None.
    """
    x = x.detach().clone().requires_grad_(True)
    if method == "gradient":
        hooks = []
        if normalize is not None:
            from .clip import max_normalize

            per = "batch" if normalize == "max-batch" else "sample"

            def norm_hook(module, grad_input, grad_output):
                return tuple(None if g is None else max_normalize(g, per=per) for g in grad_input)

            hooks = [m.register_full_backward_hook(norm_hook) for m in model.modules() if isinstance(m, nn.Linear)]
        try:
            out = model(x)
            fb = output_feedback if output_feedback is not None else _unit_feedback(out)
            out.backward(fb)
        finally:
            for h in hooks:
                h.remove()
    elif method.startswith("lfp-"):
        lfp = LFP(model, method[4:], normalize=normalize)
        out = lfp(x)
        lfp.backward(out, output_feedback if output_feedback is not None else _unit_feedback(out))
    else:
        raise ValueError(f"method must be 'gradient' or 'lfp-<composite>', got {method!r}")
    model.zero_grad(set_to_none=True)
    return x.grad.detach()


def _unit_feedback(out: Tensor) -> Tensor:
    fb = torch.zeros_like(out)
    fb[..., 0] = 1.0
    return fb


def shattering(signal: Tensor) -> float:
    """Correlation between the signal at neighbouring inputs (1 = smooth, 0 = shattered, like noise).

    ``signal`` is ``(N,)`` or ``(N, d)`` over inputs ordered along a line; the Pearson correlation of
    ``signal[k]`` and ``signal[k+1]`` over all ``k`` (and features).
    """
    s = signal.detach().double().reshape(signal.shape[0], -1)
    if s.shape[0] < 3:
        raise ValueError("shattering needs at least 3 ordered inputs")
    a, b = s[:-1].reshape(-1), s[1:].reshape(-1)
    if torch.equal(a, b):  # a constant signal: neighbours are identical
        return 1.0
    a, b = a - a.mean(), b - b.mean()
    den = float(a.norm() * b.norm())
    return float((a * b).sum()) / den if den > 0 else 0.0


def roughness(signal: Tensor) -> float:
    """Total variation over range of a 1-d signal along ordered inputs: ``Σ|s[k+1] − s[k]| / (max − min)``.

    1 for a monotone signal, 2 for a single bump, and large for a shattered, noise-like one. Unlike
    the neighbour correlation it does not saturate for random-walk-like signals, and one outlier does
    not dominate it. A constant signal gives 0.
    """
    s = signal.detach().double().reshape(-1)
    if s.numel() < 2:
        raise ValueError("roughness needs at least 2 ordered inputs")
    spread = float(s.max() - s.min())
    return float((s[1:] - s[:-1]).abs().sum()) / spread if spread > 0 else 0.0
