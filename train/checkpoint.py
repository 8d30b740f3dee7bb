"""Checkpoints: weights + registry name + ModelSpec + metrics, written atomically, loaded with weights_only=True."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from formats.writer import Kind, artifact_path
from runtime.spec import ModelSpec
from train.cards.registry import get_card
from train.errors import TrainError

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
    with artifact_path(path, Kind.CHECKPOINT) as tmp:
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
    missing = sorted({"model_name", "state_dict", "spec", "metrics"} - set(payload))
    if missing:
        raise TrainError(
            f"{path}: checkpoint lacks {', '.join(missing)}; it was not written by `python -m train` (train again)"
        )
    spec = ModelSpec.from_json(payload["spec"], source=f"{path} (spec)")
    try:
        metrics = json.loads(payload["metrics"])
    except (TypeError, ValueError) as exc:
        raise TrainError(f"{path}: its metrics are not valid JSON ({exc}); train again") from None
    model = get_card(payload["model_name"]).build(spec)  # random init; the saved weights follow
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()
        raise TrainError(
            f"{path}: the saved weights do not fit model {payload['model_name']!r} with its spec "
            f"({' '.join(line.strip() for line in first[:3])[:300]}); train again"
        ) from None
    model.eval()
    _check_outputs(path, model, spec)
    return Checkpoint(payload["model_name"], model, spec, metrics)


def _check_outputs(path: Path, model: nn.Module, spec: ModelSpec) -> None:
    """One forward pass on a zero input: the model must output one score per label of its spec (an 11-label
    spec on a 10-class model would otherwise export and deploy with a label that can never be predicted)."""
    with torch.no_grad():
        try:
            out = model(torch.zeros((1,) + spec.input_shape))
        except RuntimeError as exc:
            raise TrainError(f"{path}: the model does not accept the spec's input {spec.input_shape} ({exc})") from None
    if out.ndim != 2 or out.shape[-1] != spec.num_classes:
        raise TrainError(
            f"{path}: the model outputs shape {tuple(out.shape)} but its spec lists "
            f"{spec.num_classes} labels; the spec does not belong to these weights"
        )
