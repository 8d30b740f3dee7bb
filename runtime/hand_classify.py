"""Classify the hand in a photo: the hand stage (``runtime.hands``), then a classifier on what it found.

A landmark model (spec ``input_kind: hand_landmarks``) reads the 21 points as features; an image model reads the
square crop around the hand through its own spec's preprocessing. No hand found → "no hand" (``prediction`` None),
unless a fallback image model is given: it then reads the whole photo, and the result says so
(``answered_by: fallback``). Used by ``runtime.infer --hands``, its streams, ``edge capture`` and the evaluation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from PIL import Image

from formats.errors import InputError
from runtime.hands import Hand, HandFinder, landmark_features
from runtime.model import Classifier
from runtime.postprocess import Prediction, checked_top_k
from runtime.preprocess import preprocess
from runtime.spec import InputKind, ModelSpec

NO_HAND = "no hand"


class AnsweredBy(str, enum.Enum):
    HAND = "hand"  # the classifier read the hand the stage found
    FALLBACK = "fallback"  # no hand: the fallback model read the whole photo
    NONE = "none"  # no hand, no fallback: no letter


@dataclass(frozen=True)
class HandResult:
    hand: Hand | None
    prediction: Prediction | None
    answered_by: AnsweredBy

    @property
    def label(self) -> str:
        return self.prediction.label if self.prediction is not None else NO_HAND

    def to_dict(self) -> dict:
        out = {"label": self.label, "answered_by": self.answered_by.value, "hand": None}
        if self.prediction is not None:
            out.update(self.prediction.to_dict())
        if self.hand is not None:
            out["hand"] = self.hand.to_dict()
        return out


def hand_sample(image: Image.Image, hand: Hand, spec: ModelSpec) -> np.ndarray:
    """The classifier's input for one found hand: landmark features, or the spec's preprocessing of the crop."""
    if spec.input_kind is InputKind.HAND_LANDMARKS:
        features = landmark_features(hand.landmarks, hand.right)
        if features.size != spec.width:
            raise InputError(
                f"model {spec.name} takes {spec.width} landmark features but runtime.hands makes {features.size}; "
                "the model was fitted by another version of the toolkit: fit it again (edge train asl --adapt DIR)"
            )
        return features.reshape(1, 1, -1)
    return preprocess(hand.crop(image), spec)


class HandClassifier:
    """Hand stage + classifier (+ optional fallback on the whole photo). Give it active objects."""

    def __init__(self, finder: HandFinder, classifier: Classifier, fallback: Classifier | None = None) -> None:
        if fallback is not None and fallback.spec.input_kind is not InputKind.IMAGE:
            raise InputError(f"fallback model {fallback.spec.name} must read images, not hand landmarks")
        self.finder, self.classifier, self.fallback = finder, classifier, fallback

    def sample(self, image: Image.Image) -> tuple[np.ndarray | None, Hand | None]:
        """The main classifier's input for this photo and the hand it came from, or (None, None): no hand."""
        hand = self.finder.find(image)
        if hand is None:
            return None, None
        return hand_sample(image.convert("RGB"), hand, self.classifier.spec), hand

    def classify(self, image: Image.Image, k: int = 1, source: str = "image") -> HandResult:
        sample, hand = self.sample(image)
        if sample is not None:
            return HandResult(hand, _top(self.classifier, sample, k, source), AnsweredBy.HAND)
        if self.fallback is None:
            return HandResult(None, None, AnsweredBy.NONE)
        return HandResult(
            None, _top(self.fallback, preprocess(image, self.fallback.spec), k, source), AnsweredBy.FALLBACK
        )


def _top(classifier: Classifier, sample: np.ndarray, k: int, source: str) -> Prediction:
    outcome = checked_top_k(classifier.run(sample[None]), classifier.spec, k, [source])[0]
    if isinstance(outcome, InputError):
        raise outcome
    return outcome
