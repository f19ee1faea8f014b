"""The user's own data as batches the Trainer reads (this path kept for users): see :mod:`spikelfp.data.user`."""

from .data.user import *  # noqa: F403 (every public name of spikelfp.data.user)
from .data.user import __all__  # noqa: F401 (the same public names)
