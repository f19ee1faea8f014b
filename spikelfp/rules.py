"""The public path of :mod:`spikelfp.lfp.rules` (``sl.rules``)."""

from .lfp.rules import *  # noqa: F403
from .lfp.rules import __all__  # noqa: F401
