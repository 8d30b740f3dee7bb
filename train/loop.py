"""The training loop: seeded Adam on in-memory tensors, a progress bar per epoch, metrics per epoch.

Inputs are decoded images already turned into tensors; an optional ``transform`` callable
(augmentation, then the runtime's normalization) maps each raw training batch on the fly.

The same loop runs single-process or under ``torchrun`` (DistributedDataParallel; gloo on the
CPU, nccl on GPUs). Batches always come from a ``DistributedSampler`` — with one replica when not
distributed — and each of W ranks takes ``batch_size / W`` samples of every global batch, so a
W-process run sees the same global batches as a single process and ends with the same weights
up to float summation order. Only rank 0 prints.
"""

from __future__ import annotations

import enum
import logging
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import BatchSampler, Dataset, DistributedSampler
from tqdm import tqdm

_logger = logging.getLogger(__name__)


class LrSchedule(str, enum.Enum):
    CONSTANT = "constant"
    COSINE = "cosine"  # per-step cosine decay from lr to 0: steadier last epochs than a constant rate


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 128  # global batch: split across ranks when distributed
    seed: int = 0
    val_fraction: float = 0.1
    schedule: LrSchedule = LrSchedule.COSINE
    label_smoothing: float = 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "schedule": LrSchedule(self.schedule).value}


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float


# --- distributed helpers -----------------------------------------------------------------


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    return world()[0] == 0


def init_distributed_from_env() -> bool:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    gloo on the CPU, nccl when CUDA is available. Each rank gets an equal share of the cores.
    Returns True when distributed.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 or (dist.is_initialized()):
        return dist.is_initialized()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", size))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    return True


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


# --- data --------------------------------------------------------------------------------


class InMemory(Dataset):
    """Tensors held in memory, fetched a whole batch of indices at a time."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]

    def batch(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices)
        return self.x[idx], self.y[idx]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def split_train_val(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of ``range(n)`` into train and validation indices."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and (n_val == 0 or n_val == n):
        from train.errors import DataError

        raise DataError(
            f"{n} training sample(s) leave an empty {'validation' if n_val == 0 else 'training'} split at "
            f"--val-fraction {val_fraction:g}; give more data (its metrics would be NaN)"
        )
    return np.sort(order[n_val:]), np.sort(order[:n_val])


# --- evaluation --------------------------------------------------------------------------


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


# --- training ----------------------------------------------------------------------------


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    config: TrainConfig,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
    desc: str = "train",
    optimizer: torch.optim.Optimizer | None = None,
) -> list[EpochMetrics]:
    """Train ``model`` in place; returns one EpochMetrics per epoch (train metrics of this rank).

    ``optimizer`` None means Adam over the parameters that require grad, at ``config.lr``.
    """
    rank, size = world()
    if config.batch_size % size:
        raise ValueError(f"batch size {config.batch_size} must be divisible by the {size} processes")
    seed_everything(config.seed + rank)  # ranks draw different augmentations and dropout masks
    dataset = InMemory(*train)
    sampler = DistributedSampler(dataset, num_replicas=size, rank=rank, shuffle=True, seed=config.seed)
    batches = BatchSampler(sampler, config.batch_size // size, drop_last=False)
    net = nn.parallel.DistributedDataParallel(model) if size > 1 else model
    optimizer = optimizer or torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    scheduler = None
    if LrSchedule(config.schedule) is LrSchedule.COSINE:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.epochs * len(batches)))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    # Bars only on a terminal: redirected to a file, each update would be one more `\r` line in the log.
    show = progress and rank == 0 and sys.stderr.isatty()
    history = []
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        sampler.set_epoch(epoch)
        net.train()
        total_loss, correct, seen = 0.0, 0, 0
        bar = tqdm(batches, desc=f"{desc} epoch {epoch}/{config.epochs}", disable=not show, leave=False)
        for indices in bar:
            xb, yb = dataset.batch(indices)
            if transform is not None:
                xb = transform(xb)
            optimizer.zero_grad(set_to_none=True)
            logits = net(xb)
            loss = loss_fn(logits, yb)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total_loss += loss.item() * len(yb)
            correct += (logits.argmax(1) == yb).sum().item()
            seen += len(yb)
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}")
        val_loss, val_acc = evaluate(model, *val)
        metrics = EpochMetrics(epoch, total_loss / seen, correct / seen, val_loss, val_acc, time.perf_counter() - start)
        history.append(metrics)
        if rank == 0:  # the per-epoch line stays even without progress bars
            _logger.info(
                f"{desc} epoch {epoch}/{config.epochs}: loss {metrics.train_loss:.4f} acc {metrics.train_accuracy:.4f}"
                f" | val loss {val_loss:.4f} acc {val_acc:.4f} | {metrics.seconds:.1f}s"
            )
    return history
