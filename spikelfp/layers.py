"""The public path of :mod:`spikelfp.lfp.ops` (``sl.layers``): linear-like layers as the rules see them."""

from .lfp.ops import *  # noqa: F403
from .lfp.ops import __all__  # noqa: F401
