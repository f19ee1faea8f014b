"""The public path of :mod:`spikelfp.lfp.strict` (``sl.strict``)."""

from .lfp.strict import *  # noqa: F403
from .lfp.strict import __all__  # noqa: F401
