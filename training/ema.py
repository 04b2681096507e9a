"""An exponential moving average of the trained weights, evaluated and kept instead of the last step's.

Usage:
    average = WeightAverage(model, decay=0.998)
    ...; optimizer.step(); average.update()      # after every step
    average.swap()                               # the averaged weights into the model (evaluate, save)
    average.swap()                               # and the trained ones back, to go on training

Why: two builds of the same recipe differ by up to 0.07 hostile PR-AUC on real comments (which
comments a sampled epoch holds, the order of the last few hundred steps). Averaging the weights of
the last few hundred steps (Polyak averaging) removes much of that step-to-step noise at no
inference cost. Only trainable parameters are averaged (the frozen embeddings and layers never
change), so an update costs one fused lerp over ~18M numbers.
"""

from __future__ import annotations

import torch
from torch import nn


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be between 0 and 1 (exclusive), got {decay}")
        self.decay = decay
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params]
        self.updates = 0

    def current_decay(self) -> float:
        # Warm-up: the first updates weigh the fresh weights more, so the start is not stuck at init.
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        weight = 1.0 - self.current_decay()
        self.updates += 1
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], weight)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the model's trainable weights with the average (calling it twice restores them)."""
        for param, shadow in zip(self.params, self.shadow, strict=True):
            held = param.detach().clone()
            param.copy_(shadow)
            shadow.copy_(held)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": [s.clone() for s in self.shadow]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["shadow"]) != len(self.shadow):
            raise ValueError(f"the saved average has {len(state['shadow'])} tensors, the model {len(self.shadow)}")
        self.updates = int(state["updates"])
        with torch.no_grad():
            for shadow, saved in zip(self.shadow, state["shadow"], strict=True):
                shadow.copy_(saved)
