"""The weight average and the mixed-precision setting: what they do, and that training keeps the average."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from training.ema import WeightAverage


def two_layers() -> nn.Sequential:
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    model[0].requires_grad_(False)  # frozen, like the embeddings and lowest layers
    return model


def test_update_moves_the_average_toward_the_weights_by_the_warmed_up_decay():
    model = two_layers()
    average = WeightAverage(model, decay=0.9)
    start = model[1].weight.detach().clone()
    with torch.no_grad():
        model[1].weight.add_(1.0)
    average.update()  # first update: decay min(0.9, 1/10) = 0.1, so 90% of the new weights
    assert torch.allclose(average.shadow[0], start + 0.9)
    for _ in range(200):
        average.update()
    assert average.current_decay() == 0.9
    assert torch.allclose(average.shadow[0], start + 1.0, atol=1e-6)
    assert len(average.shadow) == 2  # the frozen layer is not averaged


def test_swap_twice_restores_the_trained_weights_and_leaves_frozen_ones():
    model = two_layers()
    average = WeightAverage(model, decay=0.5)
    frozen = model[0].weight.detach().clone()
    with torch.no_grad():
        model[1].weight.mul_(3.0)
    trained = model[1].weight.detach().clone()
    average.update()
    averaged = average.shadow[0].clone()
    average.swap()
    assert torch.equal(model[1].weight, averaged)
    assert torch.equal(average.shadow[0], trained)
    average.swap()
    assert torch.equal(model[1].weight, trained)
    assert torch.equal(model[0].weight, frozen)


def test_state_round_trips_and_decay_is_checked():
    model = two_layers()
    average = WeightAverage(model, decay=0.99)
    average.update()
    copy = WeightAverage(two_layers(), decay=0.99)
    copy.load_state_dict(average.state_dict())
    assert copy.updates == 1 and all(torch.equal(a, b) for a, b in zip(copy.shadow, average.shadow, strict=True))
    with pytest.raises(ValueError, match="ema_decay must be between 0 and 1"):
        WeightAverage(model, decay=1.0)


def test_training_with_an_average_keeps_the_averaged_weights(tiny_config, tmp_path):
    from training.data import Row
    from training.model import build_tagger, load_model_state
    from training.train import fit

    rows = [
        Row(id=f"r{i}", text=text, labels={"welcoming": int(i % 2 == 0), "curious": int(i % 3 == 0), "hostile": 0})
        for i, text in enumerate(["welcome here friend", "where are you from?", "nice", "hello all"] * 6)
    ]
    config = dataclasses.replace(tiny_config, epochs=1, ema_decay=0.9, mixed_precision="bf16")  # a real bf16 step
    fit(rows[:16], rows[16:], config, tmp_path)
    best, last = build_tagger(config), build_tagger(config)
    load_model_state(tmp_path / "best.pt", best)
    checkpoint = load_model_state(tmp_path / "last.pt", last)
    kept = [p for p in best.parameters() if p.requires_grad]
    assert all(torch.equal(k, s) for k, s in zip(kept, checkpoint["ema"]["shadow"], strict=True))
    trained = [p for p in last.parameters() if p.requires_grad]
    assert any(not torch.equal(k, t) for k, t in zip(kept, trained, strict=True))  # best.pt holds the average


def test_mixed_precision_setting(tiny_config, monkeypatch):
    from training.train import autocast_dtype

    cpu = torch.device("cpu")
    assert autocast_dtype(dataclasses.replace(tiny_config, mixed_precision="off"), cpu) is None
    assert autocast_dtype(dataclasses.replace(tiny_config, mixed_precision="bf16"), cpu) is torch.bfloat16
    auto = dataclasses.replace(tiny_config, mixed_precision="auto")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert autocast_dtype(auto, cpu) is None  # no native bf16: fp32
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert autocast_dtype(auto, cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="mixed_precision must be"):
        autocast_dtype(dataclasses.replace(tiny_config, mixed_precision="fp16"), cpu)
