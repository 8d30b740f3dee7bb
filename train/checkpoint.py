"""Checkpoints: weights + registry name + ModelSpec + metrics, written atomically, loaded with weights_only=True."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from runtime.atomic import atomic_path
from runtime.spec import ModelSpec
from train.errors import TrainError
from train.models import get_model

FORMAT = "edge-toolkit-checkpoint/1"


@dataclass
class Checkpoint:
    model_name: str
    model: nn.Module
    spec: ModelSpec
    metrics: dict


def save_checkpoint(path: Path, model_name: str, model: nn.Module, spec: ModelSpec, metrics: dict) -> Path:
    payload = {
        "format": FORMAT,
        "model_name": model_name,
        "state_dict": model.state_dict(),
        # JSON strings keep the payload loadable with weights_only=True.
        "spec": spec.to_json(),
        "metrics": json.dumps(metrics),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: Path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"{path}: checkpoint not found; train one with `python -m train mnist --out DIR`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise TrainError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise TrainError(f"{path}: not a checkpoint of this toolkit (expected format {FORMAT})")
    spec = ModelSpec.from_json(payload["spec"], source=f"{path} (spec)")
    model = get_model(payload["model_name"]).build(spec)  # random init; the saved weights follow
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return Checkpoint(payload["model_name"], model, spec, json.loads(payload["metrics"]))
