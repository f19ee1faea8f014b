"""In-place operations in an autograd graph: which of them only route the feedback (LFP-SPEC §9).

An in-place operation on a tensor that is not a view becomes a node of its own type (``SigmoidBackward0``
for ``h.sigmoid_()``, ``CopyBackwards`` for ``h.copy_(t)``), which the strictness walk judges by that type.
An in-place operation on a *view* (``h[..., :2].sigmoid_()``, ``buf[t] = s``) becomes one ``CopySlices``
node on the view's base, whatever the operation was. PyTorch's ``CopySlices``
(``torch/csrc/autograd/functions/tensor.{h,cpp}``) holds the operation's own backward node as its
member ``fn``, which Python cannot reach: ``next_functions`` are the base's edge followed by ``fn``'s edges
1…n (its edge 0, to the view's old values, is hidden), and the Python class exposes no attribute of it.
Its backward copies the incoming feedback ``g`` (shaped like the base), cuts the view's region out of
it, runs ``fn`` on that region, writes ``fn``'s first output back into the region and passes ``fn``'s
other outputs on.

:func:`copy_slices_operation` therefore runs the node's backward once on a probe feedback, on the
``meta`` device (shapes only, no data; a real zero probe where an operation has no meta kernel, e.g. a
boolean mask), under a dispatch mode that records every ATen operation applied to the probe or to what
was derived from it. The node routes the feedback iff

1. every such operation only moves, selects or clears values (copy, view, index, gather, zeros, a
   masked or indexed fill, a broadcast's sum), and
2. the operation *wrote* into the view: its backward clears the feedback of the overwritten values
   (``zeros_like`` for ``copy_``/``fill_``/``zero_``, ``index_put``/``masked_fill``/``index_fill``/``scatter``
   for a partial write), so that each element of the feedback goes to exactly one place: to what was
   written, or to the value that was kept.

``copy_`` and ``__setitem__`` into a slice, ``index_put_`` without accumulation, ``fill_``/``zero_``/
``masked_fill_`` and circular padding (which copies slices) pass. An element-wise function applied in
place (``sigmoid_``, ``exp_``, ``pow_``, ``clamp_``, ``relu_``, ``mul_``) computes a derivative (condition
1), and an in-place sum (``v += t``, ``v.add_(1)``, ``index_put_(…, accumulate=True)``) passes the feedback
unchanged both to the old values and to the summand (condition 2): both are reported with what was
found.

Limitation: where the base needs no feedback (a constant buffer, ``buf = torch.zeros(…)``), ``fn`` is not
asked for the old values' feedback, so a write and an in-place sum into the buffer leave the same
backward (``buf[t] = s`` and ``buf[t] += s`` both pass ``s`` its feedback unchanged); both pass. The two
agree whenever the buffer held zeros there.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["copy_slices_operation", "index_put_operation"]

#: ATen operations that create a tensor unrelated to the probe's values (uninitialised)
_FRESH = frozenset({"new_empty_strided", "new_empty", "empty_like"})
#: operations that clear the feedback of every value: the write of a whole region
_CLEARS = frozenset({"zeros_like", "new_zeros", "zero_", "fill_", "fill"})
#: operations that clear the feedback of the values they index: a partial write
_PARTIAL_WRITES = frozenset(
    {
        "index_put",
        "index_put_",
        "_index_put_impl_",
        "masked_fill",
        "masked_fill_",
        "index_fill",
        "index_fill_",
        "scatter",
        "scatter_",
        "put",
        "put_",
    }
)
#: operations that move, select, convert or sum broadcast copies of values (the backward of a copy)
_MOVES = frozenset(
    {
        "copy_",
        "clone",
        "_to_copy",
        "detach",
        "alias",
        "lift_fresh",
        "as_strided",
        "view",
        "_unsafe_view",
        "_reshape_alias",
        "reshape",
        "expand",
        "permute",
        "transpose",
        "t",
        "squeeze",
        "unsqueeze",
        "slice",
        "select",
        "narrow",
        "unbind",
        "split",
        "split_with_sizes",
        "index",
        "_unsafe_index",
        "index_select",
        "gather",
        "take",
        "masked_select",
        "masked_scatter_backward",
        "sum",
        "sum_to_size",
        "conj",
        "_conj",
        "resolve_conj",
        "resolve_neg",
    }
)


_CONTAINERS = (tuple, list)


def _leaves(value: Any):
    """The tensors in an operation's arguments (nested tuples, lists and dicts)."""
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, _CONTAINERS):
        for item in value:
            if isinstance(item, (Tensor, tuple, list)):
                yield from _leaves(item)
    elif isinstance(value, dict):
        yield from _leaves(tuple(value.values()))


def _meta(value: Any) -> Any:
    """``value`` with every tensor and device moved to the meta device (shapes and strides kept, no data)."""
    if isinstance(value, Tensor):
        if value.device.type == "meta":
            return value
        return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="meta")
    if isinstance(value, torch.device):
        return torch.device("meta")
    if isinstance(value, _CONTAINERS):
        if not any(isinstance(item, (Tensor, tuple, list)) for item in value):
            return value  # sizes, strides, dims
        return type(value)(_meta(item) for item in value)
    if isinstance(value, dict):
        return {key: _meta(item) for key, item in value.items()}
    return value


class _FeedbackTrace(TorchDispatchMode):
    """Records what a backward does to a probe feedback (see the module docstring)."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:  # nothing here is compiled: spares importing torch._dynamo (seconds)
        return False

    def __init__(self, probe: Tensor, meta: bool) -> None:
        super().__init__()
        self.meta = meta
        self.carrying: dict[int, Tensor] = {id(probe): probe}  # tensors kept alive: their ids stay unique
        self.wrote = False
        self.computed: str | None = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        carried = any(id(t) in self.carrying for t in _leaves((args, kwargs)))
        if self.meta:
            args, kwargs = _meta(args), _meta(kwargs)
        out = func(*args, **kwargs)
        if not carried:
            return out
        name = func.overloadpacket.__name__
        if name in _FRESH:
            return out
        if name in _CLEARS:
            self.wrote = True
            return out
        if name in _PARTIAL_WRITES:
            self.wrote = True
        elif name not in _MOVES and self.computed is None:
            self.computed = f"aten.{name}"
        for t in _leaves(out):
            self.carrying[id(t)] = t
        return out


def _trace(node: Any, probe: Tensor, meta: bool) -> _FeedbackTrace:
    with torch.no_grad(), _FeedbackTrace(probe, meta) as trace:
        node(probe)
    return trace


def copy_slices_operation(node: Any) -> str | None:
    """None if the ``CopySlices`` ``node`` only routes the feedback, else what its in-place operation does.

    Parameters
    ----------
    node
        An autograd node of type ``CopySlices`` (an in-place operation on a view), before its backward ran.

    Returns
    -------
    str or None
        A description of the operation (``"… computes aten.sigmoid_backward"``) when it is not a write.
    """
    meta = node._input_metadata[0]
    shape, dtype, device = tuple(meta.shape), meta.dtype, meta.device
    try:
        trace = _trace(node, torch.empty(shape, dtype=dtype, device="meta"), meta=True)
    except Exception:  # an operation without a meta kernel (a boolean mask's nonzero): run it on zeros
        try:
            trace = _trace(node, torch.zeros(shape, dtype=dtype, device=device), meta=False)
        except Exception as exc:
            return f"an in-place operation on a view whose backward could not be inspected ({exc})"
    if trace.computed is not None:
        return (
            f"an in-place operation on a view (e.g. `h[..., :k].sigmoid_()`) whose backward computes {trace.computed}"
        )
    if not trace.wrote and node.next_functions[0][0] is not None:
        return (
            "an in-place sum into a view (e.g. `h[..., :k] += t` or `.add_(1)`): its backward passes the feedback "
            "unchanged to the old values and to what was added"
        )
    return None


def index_put_operation(node: Any) -> str | None:
    """None for ``h[idx] = v`` (``IndexPutBackward0`` without accumulation, a write), else a description.

    Parameters
    ----------
    node
        An autograd node of type ``IndexPutBackward0``.

    Returns
    -------
    str or None
        A description of the operation when it accumulates (a sum).
    """
    if getattr(node, "_saved_accumulate", True):
        return "an in-place indexed sum (`index_put_(..., accumulate=True)`, `h[idx] += v`)"
    return None
