"""Strictness (LFP-SPEC §9): feedback flows only through LFP rules and pure routing nodes.

``lfp.backward(out, feedback)`` hands the feedback to autograd, which runs the backward of every node of
``out``'s graph. A node of a spikelfp rule Function applies an LFP rule; a routing node (view, reshape,
cat, pad, max-pool, …) only moves values, so its backward moves the feedback the same way. Any other node
(a bare ``+``, ``torch.sigmoid``, a surrogate spike Function) would differentiate, i.e. mix a gradient
into LFP. :func:`inspect` walks the graph once, before anything is written to ``.grad``, and reports the
first such node together with the rule layers around it.

What is walked: every node reachable from ``out.grad_fn``. An autograd graph holds only nodes that lead
to some tensor requiring grad, so each of them is on a path from the output to a parameter, to the input,
or to another tensor that requires grad (e.g. a learnable encoder outside the model, or a non-leaf input
built by an operation). All of them are held to the same rule: autograd would write a gradient into any
of those tensors, so a non-rule node on the way to any of them is reported.

It also unpacks what every rule node saved, so that a tensor changed in place after a rule saved it
(which autograd would report half-way through the backward) is reported before anything is written.

Cost: one Python loop over the nodes (a dict look-up per node type, an unpack per rule node),
independent of the batch size; an in-place write on a view (``CopySlices``) costs one trace of its
backward on the meta device (:mod:`spikelfp.lfp.inplace`).
Measured with ``benchmarks/bench_strict.py`` (1 thread, B = 128, T = 25, on a shared machine where the
steps took 2.2× as long as when first measured): 7 µs for the multi-step spiking MLP 784-1000-1000-10
(13 nodes; LFP step 741 ms; 4 µs before the unpack and the in-place tracing) and 139 µs for the same layers
as a 25-step snnTorch ``Leaky`` loop (157 nodes; LFP step 1284 ms; 79 µs before), i.e. 0.01% of a step; the
same loop writing each step's output into a buffer (``out[t] = spk``, 25 ``CopySlices``) 12 ms, 0.9% of its
step (0.5 ms per traced write). Nothing is cached: a node's type does not say what a ``CopySlices`` wraps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .inplace import copy_slices_operation, index_put_operation
from .site import RuleFunction

__all__ = ["ROUTING", "GraphReport", "StrictError", "inspect"]


class StrictError(TypeError):
    """An operation without an LFP rule lies between the output and a parameter or the input."""


#: autograd nodes that only move, copy or select values (their backward routes the feedback as it is):
#: view/reshape, permute/transpose, expand, select/slice/index, cat/stack/split/unbind, squeeze/unsqueeze
#: (also their in-place forms ``unsqueeze_``, ``t_``, …), clone, dtype/device copies, writes into a tensor
#: that is not a view (``h.copy_(t)``, ``fill_``, ``zero_``, ``masked_fill_``: the overwritten values get
#: no feedback, what was written gets it), the pre-padding of convolutions (constant, reflection,
#: replication) and max-pooling (winner takes all: autograd's own backward routes to the arg-max).
#: ``AccumulateGrad`` is a parameter or input leaf. In-place operations on views (``CopySlices``) and
#: ``index_put_`` are judged node by node (:data:`_PER_NODE`).
ROUTING = frozenset(
    {
        "AccumulateGrad",
        "ViewBackward0",
        "UnsafeViewBackward0",
        "ReshapeAliasBackward0",
        "AliasBackward0",
        "AsStridedBackward0",
        "PermuteBackward0",
        "TransposeBackward0",
        "TBackward0",
        "ExpandBackward0",
        "SelectBackward0",
        "SliceBackward0",
        "IndexBackward0",
        "IndexSelectBackward0",
        "CatBackward0",
        "StackBackward0",
        "SplitBackward0",
        "SplitWithSizesBackward0",
        "UnbindBackward0",
        "SqueezeBackward0",
        "SqueezeBackward1",
        "SqueezeBackward2",
        "SqueezeBackward3",
        "SqueezeBackward4",
        "SqueezeBackward5",
        "UnsqueezeBackward0",
        "UnsqueezeBackward1",
        "TransposeBackward1",
        "TBackward1",
        "CloneBackward0",
        "ToCopyBackward0",
        "CopyBackwards",
        "FillBackward0",
        "FillBackward1",
        "FillBackward2",
        "FillBackward3",
        "ZeroBackward0",
        "MaskedFillBackward0",
        "MaskedFillBackward1",
        "ConstantPadNdBackward0",
        "ReflectionPad1DBackward0",
        "ReflectionPad2DBackward0",
        "ReflectionPad3DBackward0",
        "ReplicationPad1DBackward0",
        "ReplicationPad2DBackward0",
        "ReplicationPad3DBackward0",
        "MaxPool2DWithIndicesBackward0",
        "MaxPool3DWithIndicesBackward0",
        "AdaptiveMaxPool2DBackward0",
        "AdaptiveMaxPool3DBackward0",
    }
)

#: autograd Functions of other libraries that pass the gradient through unchanged: DDP's sink, and the
#: Function (``torch.nn.modules._functions.BackwardHookFunction``) in which
#: ``Module.register_full_backward_hook`` wraps a module's inputs and outputs. Its backward passes the
#: feedback on; the user's hook sees it there, and a hook that returns a changed one changes LFP's
#: feedback from there on, as it would change a gradient.
_IDENTITY_FUNCTIONS = frozenset(
    {("torch.nn.parallel.distributed", "_DDPSink"), ("torch.nn.modules._functions", "BackwardHookFunction")}
)

#: nodes whose type does not say whether they route: a function of the node gives None (routing) or what
#: the node computes (see :mod:`spikelfp.lfp.inplace`)
_PER_NODE: dict[str, Callable[[Any], str | None]] = {
    "CopySlices": copy_slices_operation,
    "IndexPutBackward0": index_put_operation,
}

_ROUTE, _RULE, _OTHER, _CHECK = 0, 1, 2, 3
_KIND: dict[type, int] = {}  # node type -> kind, filled on first sight


def _kind(cls: type) -> int:
    kind = _KIND.get(cls)
    if kind is None:
        forward_cls = getattr(cls, "_forward_cls", None)
        if isinstance(forward_cls, type) and issubclass(forward_cls, RuleFunction):
            kind = _RULE
        elif cls.__name__ in ROUTING:
            kind = _ROUTE
        elif cls.__name__ in _PER_NODE:
            kind = _CHECK
        elif isinstance(forward_cls, type) and (forward_cls.__module__, forward_cls.__name__) in _IDENTITY_FUNCTIONS:
            kind = _ROUTE
        else:
            kind = _OTHER
        _KIND[cls] = kind
    return kind


@dataclass
class GraphReport:
    """What :func:`inspect` found in an output's autograd graph.

    Attributes
    ----------
    nodes
        Number of nodes walked.
    rule_nodes
        Number of rule nodes.
    own, foreign
        Whether rule nodes of the given engine run / of other runs were seen (rule nodes that record
        their site carry its run).
    calls
        How often each named rule layer ran in this graph (``site.name -> count``).
    violation
        The first node that is neither a rule nor routing, or None.
    detail
        What the violation computes, where its type alone does not say (an in-place operation on a view).
    above
        Name of the nearest named rule layer between the violation and the output (later in the forward).
    unusable
        ``(layer, reason)`` for the first rule node whose backward cannot run: a tensor it saved in the
        forward pass was changed in place afterwards (``h[:, 0] = 0`` on a layer's output, which the rule
        keeps), or the graph was already used by a backward. None when every rule node can run.
    """

    nodes: int = 0
    rule_nodes: int = 0
    own: bool = False
    foreign: bool = False
    calls: dict[str, int] = field(default_factory=dict)
    violation: Any = None
    detail: str | None = None
    above: str | None = None
    unusable: tuple[str, str] | None = None

    def describe(self) -> str:
        """``operation X (…) between layer 'a' and layer 'b'`` for the violation."""
        node = self.violation
        what = f"operation {type(node).__name__}"
        forward_cls = getattr(type(node), "_forward_cls", None)
        if self.detail is not None:
            what += f" ({self.detail})"
        elif isinstance(forward_cls, type):
            what += f" (autograd Function {forward_cls.__module__}.{forward_cls.__qualname__})"
        else:
            what += " (autograd would differentiate it)"
        below = _name_below(node)
        if below and self.above:
            where = f" between layer '{below}' and layer '{self.above}'"
        elif self.above:
            where = f" before layer '{self.above}'"
        elif below:
            where = f" after layer '{below}'"
        else:
            where = ""
        return what + where


def _site_name(node: Any) -> str | None:
    site = getattr(node, "site", None)
    return getattr(site, "name", None)


def _name_below(node: Any, limit: int = 10_000) -> str | None:
    """The nearest named rule layer found from ``node`` towards the inputs (breadth first)."""
    seen = {node}
    queue = [node]
    for current in queue:
        if len(queue) > limit:
            break
        if current is not node and _kind(type(current)) == _RULE:
            name = _site_name(current)
            if name is not None:
                return name
        for nxt, _ in current.next_functions:
            if nxt is not None and nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return None


def inspect(root: Any, run: Any) -> GraphReport:
    """Walk the autograd graph below ``root`` (an output's ``grad_fn``).

    Parameters
    ----------
    root
        The output's ``grad_fn``.
    run
        The engine's :class:`~spikelfp.lfp.site.Run`; rule nodes whose ``site.run`` is it count as ``own``.

    Returns
    -------
    GraphReport
        Counts, ownership, how often each layer ran, and the first node without a rule.
    """
    report = GraphReport()
    calls = report.calls
    rule_nodes = []
    seen = {root}
    stack: list[tuple[Any, str | None]] = [(root, None)]
    kinds = _KIND
    while stack:
        node, above = stack.pop()
        cls = type(node)
        kind = kinds.get(cls)
        if kind is None:
            kind = _kind(cls)
        if kind == _RULE:
            rule_nodes.append(node)
            site = getattr(node, "site", None)
            if site is not None:
                if site.run is run:
                    report.own = True
                else:
                    report.foreign = True
                above = site.name
                calls[above] = calls.get(above, 0) + 1
        elif kind == _OTHER and report.violation is None:
            report.violation, report.above = node, above
        elif kind == _CHECK and report.violation is None:
            detail = _PER_NODE[cls.__name__](node)
            if detail is not None:
                report.violation, report.detail, report.above = node, detail, above
        for nxt, _ in node.next_functions:
            if nxt is not None and nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, above))
    report.nodes = len(seen)
    report.rule_nodes = len(rule_nodes)
    for node in rule_nodes:  # autograd would raise this half-way through the backward, after writing to .grad
        try:
            _ = node.saved_tensors  # unpacking checks each tensor's version
        except RuntimeError as exc:
            report.unusable = (_site_name(node) or type(node).__name__, str(exc))
            break
    return report
