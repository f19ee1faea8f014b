"""The public path of :mod:`spikelfp.lfp.composites` (``sl.composites``)."""

from .lfp.composites import *  # noqa: F403
from .lfp.composites import __all__  # noqa: F401
