"""Training: one loop for LFP (any composite), gradient descent and surrogate-gradient BPTT.

- :mod:`~spikelfp.train.config`: :class:`Config` (a run's settings, their paper defaults and checks),
  the choices of each setting (the command line offers these), the optimizer factory;
- :mod:`~spikelfp.train.trainer`: :class:`Trainer` (the loop, its run folder, resume, DDP);
- :mod:`~spikelfp.train.checkpoint`: the checkpoint format (version, SHA-256, checks);
- :mod:`~spikelfp.train.model_file`: ``model.pt`` and :func:`load_model`;
- :mod:`~spikelfp.train.tally`: an epoch's running metrics.
"""

from .checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, CheckpointError, payload_digest
from .config import FEEDBACKS, Config, check_config_values, make_optimizer, optimizer_class
from .model_file import load_model
from .trainer import Trainer, TrainingStopped

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "FEEDBACKS",
    "CheckpointError",
    "Config",
    "Trainer",
    "TrainingStopped",
    "check_config_values",
    "load_model",
    "make_optimizer",
    "optimizer_class",
    "payload_digest",
]
