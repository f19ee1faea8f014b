"""The running sums of one epoch's training metrics: correct predictions, summed cross-entropy, samples."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Tally"]


@dataclass
class Tally:
    """Running sums of one epoch's training metrics (tensors: no per-step sync)."""

    correct: Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.float64))
    loss: Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.float64))
    seen: int = 0

    @classmethod
    def on(cls, device: torch.device) -> Tally:
        """An empty tally whose sums live on ``device`` (so adding never copies across devices)."""
        return cls(
            torch.zeros((), dtype=torch.float64, device=device), torch.zeros((), dtype=torch.float64, device=device)
        )

    def add(self, logits: Tensor, y: Tensor) -> None:
        with torch.no_grad():
            self.correct += (logits.argmax(-1) == y).sum()
            self.loss += F.cross_entropy(logits.float(), y, reduction="sum").double()
        self.seen += y.shape[0]

    def state(self) -> dict:
        return {
            "correct": self.correct.detach().cpu().clone(),
            "loss": self.loss.detach().cpu().clone(),
            "seen": self.seen,
        }

    @classmethod
    def from_state(cls, s: dict, device: torch.device | str = "cpu") -> Tally:
        return cls(s["correct"].to(device).clone(), s["loss"].to(device).clone(), int(s["seen"]))
