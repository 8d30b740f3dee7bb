"""The training loop: seeded Adam on in-memory tensors, a progress bar per epoch, metrics per epoch.

Inputs are already preprocessed by ``runtime.preprocess.normalize`` (the one preprocessing
implementation); an optional ``augment`` callable transforms each training batch on the fly.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 128
    seed: int = 0
    val_fraction: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def split_train_val(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of ``range(n)`` into train and validation indices."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> tuple[float, float]:
    """(loss, accuracy) of ``model`` on the whole of (x, y)."""
    if len(x) == 0:
        return float("nan"), float("nan")
    logits = predict_logits(model, x, batch_size)
    loss = nn.functional.cross_entropy(logits, y).item()
    return loss, (logits.argmax(1) == y).float().mean().item()


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    config: TrainConfig,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
    desc: str = "train",
) -> list[EpochMetrics]:
    """Train ``model`` in place; returns one EpochMetrics per epoch."""
    generator = seed_everything(config.seed)
    x, y = train
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = nn.CrossEntropyLoss()
    history = []
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total_loss, correct, seen = 0.0, 0, 0
        steps = range(0, len(x), config.batch_size)
        bar = tqdm(steps, desc=f"{desc} epoch {epoch}/{config.epochs}", disable=not progress, leave=False)
        for i in bar:
            idx = order[i : i + config.batch_size]
            xb, yb = x[idx], y[idx]
            if augment is not None:
                xb = augment(xb)
            optimizer.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
            seen += len(idx)
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}")
        val_loss, val_acc = evaluate(model, *val)
        metrics = EpochMetrics(epoch, total_loss / seen, correct / seen, val_loss, val_acc, time.perf_counter() - start)
        history.append(metrics)
        if progress:
            tqdm.write(
                f"{desc} epoch {epoch}/{config.epochs}: loss {metrics.train_loss:.4f} acc {metrics.train_accuracy:.4f}"
                f" | val loss {val_loss:.4f} acc {val_acc:.4f} | {metrics.seconds:.1f}s"
            )
    return history
