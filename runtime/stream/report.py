"""The run's summary (text or a JSON document) and the live status line shown on a terminal."""

from __future__ import annotations

import sys
from typing import IO

import numpy as np

from runtime.stream.pipeline import SourceStats, StreamPipeline


def _percentiles(values) -> dict:
    if not values:
        return {"p50": None, "p99": None}
    data = np.fromiter(values, dtype=np.float64)
    return {"p50": round(float(np.percentile(data, 50)), 3), "p99": round(float(np.percentile(data, 99)), 3)}


def _fps(stats: SourceStats) -> float:
    if stats.first_at is None or stats.last_at is None or stats.classified < 2 or stats.last_at <= stats.first_at:
        return 0.0
    return (stats.classified - 1) / (stats.last_at - stats.first_at)


def source_problems(stats: SourceStats) -> list[str]:
    """Every reason this source makes the run exit non-zero, each one line naming the source."""
    lines = [f"{stats.uri}: {p}" for p in stats.report.problems]
    if stats.error:
        lines.append(stats.error)
    return lines


def summary(
    pipeline: StreamPipeline, model: str, engine: str, interrupted: bool = False, outputs: list[dict] | None = None
) -> dict:
    """The run as one JSON-ready document; ``outputs`` names what the sinks wrote (files, frame counts)."""
    elapsed = max(pipeline.finished_at - pipeline.started_at, 1e-9)
    sources = []
    for stats, spec in zip(pipeline.stats, pipeline.sources):
        sources.append(
            {
                "source": stats.uri,
                "kind": spec.kind.value,
                "live": stats.live,
                "decoded": stats.decoded,
                "skipped": stats.skipped,
                "dropped": stats.dropped,
                "classified": stats.classified,
                "failed": stats.failed,
                "no_hand": stats.no_hand,
                "undecodable": stats.report.undecodable,
                "reconnects": stats.report.reconnects,
                "accounted": stats.accounted,
                "fps": round(_fps(stats), 3),
                "latency_ms": _percentiles(stats.latencies_ms),
                "problems": source_problems(stats),
            }
        )
    stages = {
        "decode": sum(s.decode_s for s in pipeline.stats),
        "preprocess": sum(s.preprocess_s for s in pipeline.stats),
        "inference": pipeline.stages.inference,
        "sink": pipeline.stages.sink,
    }
    total = sum(stages.values()) or 1.0
    batches = pipeline.stages.batches
    classified = sum(s.classified for s in pipeline.stats)
    return {
        "model": model,
        "engine": engine,
        "interrupted": interrupted,
        "elapsed_s": round(elapsed, 3),
        "classified": classified,
        "frames_per_s": round(classified / elapsed, 3),
        "batches": batches,
        "mean_batch": round(pipeline.stages.batched_frames / batches, 3) if batches else 0,
        "stage_seconds": {k: round(v, 4) for k, v in stages.items()},
        "stage_share": {k: round(v / total, 4) for k, v in stages.items()},
        "sources": sources,
        "outputs": outputs or [],
        "errors": [line for s in sources for line in s["problems"]] + pipeline.inference_errors,
    }


def format_summary(doc: dict) -> str:
    lines = [
        f"{doc['classified']} frame(s) classified in {doc['elapsed_s']:.1f} s ({doc['frames_per_s']:.1f} "
        f"frames/s, {doc['batches']} backend calls, mean batch {doc['mean_batch']:.1f})"
        + (" — interrupted" if doc["interrupted"] else "")
    ]
    for s in doc["sources"]:
        lat = s["latency_ms"]
        latency = f", latency p50 {lat['p50']:.1f} ms p99 {lat['p99']:.1f} ms" if lat["p50"] is not None else ""
        extra = "".join(
            f", {s[k]} {k}"
            for k in ("skipped", "dropped", "failed", "no_hand", "undecodable", "reconnects")
            if s.get(k)
        )
        lines.append(
            f"  {s['source']}: {s['decoded']} decoded, {s['classified']} classified{extra}, {s['fps']:.1f} fps{latency}"
        )
    for out in doc.get("outputs", []):
        kind = next(k for k in ("annotated", "jsonl", "view") if k in out)
        if kind == "view":
            lines.append(f"  view {out['view']}: {out['frames']} frame(s) sent, {out['not_shown']} not shown")
            continue
        dropped = f", {out['dropped']} dropped by the encoder" if out.get("dropped") else ""
        lines.append(f"  wrote {out[kind]}: {out['frames']} frame(s){dropped}")
    share = doc["stage_share"]
    lines.append("  stage share: " + ", ".join(f"{k} {v:.0%}" for k, v in share.items()))
    if doc["errors"]:
        lines.append(f"{len(doc['errors'])} problem(s):")
        lines.extend(f"  {e}" for e in doc["errors"])
    return "\n".join(lines)


class LiveLine:
    """One self-overwriting status line on a terminal; silent when ``out`` is not a TTY."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stderr
        self.enabled = hasattr(self.out, "isatty") and self.out.isatty()
        self._last = 0

    def __call__(self, pipeline: StreamPipeline) -> None:
        if not self.enabled:
            return
        parts, latencies = [], []
        for stats in pipeline.stats:
            parts.append(
                f"{_short(stats.uri)} {_fps(stats):.1f} fps" + (f" {stats.dropped} dropped" if stats.dropped else "")
            )
            latencies.extend(list(stats.latencies_ms)[-200:])
        lat = _percentiles(latencies)
        text = " | ".join(parts) + (f" | p50 {lat['p50']:.0f} ms p99 {lat['p99']:.0f} ms" if lat["p50"] else "")
        self.out.write("\r" + text[:160].ljust(self._last))
        self.out.flush()
        self._last = len(text[:160])

    def clear(self) -> None:
        if self.enabled and self._last:
            self.out.write("\r" + " " * self._last + "\r")
            self.out.flush()


def _short(uri: str) -> str:
    return uri if len(uri) <= 24 else "…" + uri[-23:]
