"""The method: rules, composites, the engine that attaches them, strictness, calibration.

- :mod:`~spikelfp.lfp.site`: what every rule Function shares (:class:`~spikelfp.lfp.site.Run`, ``Site``);
- :mod:`~spikelfp.lfp.ops`: linear-like layers as the rules see them;
- :mod:`~spikelfp.lfp.rules`: one class per rule (public path ``spikelfp.rules``);
- :mod:`~spikelfp.lfp.composites`: which rule each module gets (public path ``spikelfp.composites``);
- :mod:`~spikelfp.lfp.engine`: :class:`~spikelfp.LFP`, attach, backward, detach;
- :mod:`~spikelfp.lfp.strict`: feedback only through rules (public path ``spikelfp.strict``);
- :mod:`~spikelfp.lfp.inplace`: which in-place operations (writes into views) only route the feedback.

This package imports nothing on its own, so that the modules below it (neurons, interop) can import
``spikelfp.lfp.site`` and ``spikelfp.lfp.rules`` without pulling in the engine above them.
"""
