"""``edge bench all``'s decision and reports: the recommendation per batch regime with its reason, INT8 that is
not faster said plainly, ratios from the one run with their round-to-round range, every instability and
measurement error named; then the table (Markdown), CSV, JSON and a PNG where matplotlib is installed."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.decide import CPU, EAGER, NOT_FASTER, REFERENCE, Measured, Report
from benchmarks.noise import COV_WARNING, Ratio, containment_error
from benchmarks.timing import environment
from formats.artifacts import Artifacts, Precision
from formats.writer import Kind, write_artifact, write_figure

ELIGIBLE = ("reference", "within budget")
FP32 = Precision.FP32.value
FLOATS = (Precision.FP32.value, Precision.FP16.value)
INT8 = (Precision.INT8.value, Precision.INT8_ORT.value)


@dataclass
class Decision:
    recommendations: dict[int, dict] = field(default_factory=dict)  # batch → {"candidate", "reason"}
    int8: list[str] = field(default_factory=list)  # "INT8 is not faster …" and the like, in words
    ratios: dict[str, dict] = field(default_factory=dict)  # "int8 vs fp32 ort-cpu @64" → Ratio as dict
    warnings: list[str] = field(default_factory=list)  # unstable timings and measurement errors


def _by_batch(report: Report) -> dict[int, dict[str, Measured]]:
    out: dict[int, dict[str, Measured]] = {}
    for m in report.measured:
        out.setdefault(m.batch, {})[m.candidate] = m
    return out


def _verdict(report: Report, name: str) -> str | None:
    scored = report.rows.get(name, {}).get("scored")
    return scored.verdict if scored else None


def _budget_words(report: Report) -> str:
    budgets = sorted({s.budget for r in report.rows.values() if (s := r.get("scored")) and s.verdict != "reference"})
    return "; ".join(budgets) if budgets else "no budget (no labelled data)"


def decide(report: Report) -> Decision:
    decision = Decision()
    for batch, here in sorted(_by_batch(report).items()):
        slow_int8 = _int8_not_faster(report, batch, here, decision)
        decision.recommendations[batch] = _recommend(report, batch, here, slow_int8)
        _ratios(batch, here, decision)
        for m in here.values():
            for s in (m.end_to_end, m.compute):
                if s.unstable:
                    decision.warnings.append(
                        f"unstable: {m.candidate} batch {batch} {s.stats.name} CoV {s.cov:.1%} > {COV_WARNING:.1%}"
                    )
            error = containment_error(
                "compute only", m.compute.median_ms, "the end-to-end call", m.end_to_end.median_ms
            )
            if error:
                decision.warnings.append(f"{m.candidate} batch {batch}: {error}")
    return decision


def _int8_not_faster(report: Report, batch: int, here: dict[str, Measured], decision: Decision) -> set[str]:
    """INT8 candidates not at least 5 % faster than the best FP16/FP32 on the same backend: said, and excluded."""
    slow = set()
    for name, m in here.items():
        precision, backend = report.rows[name]["precision"], report.rows[name]["backend"]
        if precision not in INT8:
            continue
        same = [n for n in here if report.rows[n]["backend"] == backend]
        floats = [here[n] for n in same if report.rows[n]["precision"] in FLOATS]
        if not floats:
            continue
        best = min(floats, key=lambda o: o.end_to_end.median_ms)
        if m.end_to_end.median_ms > NOT_FASTER * best.end_to_end.median_ms:
            slow.add(name)
            decision.int8.append(
                f"INT8 is not faster here: {name} takes {m.end_to_end.median_ms:.3f} ms at batch {batch} against "
                f"{best.end_to_end.median_ms:.3f} ms for {best.candidate} "
                f"({best.end_to_end.median_ms / m.end_to_end.median_ms:.2f}× speed); not recommended"
            )
    return slow


def _recommend(report: Report, batch: int, here: dict[str, Measured], slow_int8: set[str]) -> dict:
    scored = any(r.get("scored") for r in report.rows.values())
    regime = "latency" if batch == 1 else "throughput"
    if not here:
        return {"candidate": None, "reason": f"nothing ran at batch {batch}"}
    eligible = {
        n: m
        for n, m in here.items()
        if n not in slow_int8 and (_verdict(report, n) in ELIGIBLE if scored else report.rows[n]["precision"] == FP32)
    }
    if not eligible:
        return {"candidate": None, "reason": f"no file is shown within the budget ({_budget_words(report)})"}
    best = min(eligible.values(), key=lambda m: m.end_to_end.median_ms)
    if scored:
        why = (
            f"fastest end to end at batch {batch} ({regime}: p50 {best.end_to_end.describe()} ms, "
            f"{best.throughput:,.0f} images/s) among the files shown within the card's budget "
            f"({_budget_words(report)}; judged on {report.data})"
        )
    else:
        why = f"fastest FP32 file at batch {batch}: no labelled data, so no other file's accuracy was checked"
    passed_over = [
        f"{n} is faster ({m.end_to_end.median_ms:.3f} ms) but "
        + ("INT8 not faster than FP16/FP32" if n in slow_int8 else f"its verdict is {_verdict(report, n) or 'unknown'}")
        for n, m in here.items()
        if n not in eligible and m.end_to_end.median_ms < best.end_to_end.median_ms
    ]
    ties = [
        n
        for n, m in eligible.items()
        if n != best.candidate and m.end_to_end.p10_ms <= best.end_to_end.stats.p90_ms
    ]  # fmt: skip
    if ties:
        why += f"; within noise of {', '.join(ties)} (p10–p90 overlap)"
    if passed_over:
        why += "; passed over: " + "; ".join(passed_over)
    if best.end_to_end.unstable:
        why += f"; its timing is unstable (CoV {best.end_to_end.cov:.1%}): rerun on a quiet machine before deciding"
    return {"candidate": best.candidate, "reason": why}


def _ratios(batch: int, here: dict[str, Measured], decision: Decision) -> None:
    """Speed-ups from the one run, round by round: INT8 (both forms) vs FP32 per backend, runtime vs eager."""
    backends = {name.split(" ", 1)[1] for name in here}
    for backend in sorted(backends):
        fp32 = here.get(f"{FP32} {backend}")
        for precision in (*INT8, Precision.FP16.value):
            other = here.get(f"{precision} {backend}")
            if fp32 and other and backend != EAGER:
                ratio = Ratio.per_round(fp32.end_to_end.round_medians, other.end_to_end.round_medians)
                decision.ratios[f"{precision} vs {FP32}, {backend}, batch {batch}"] = asdict(ratio)
    eager, runtime = here.get(f"{FP32} {EAGER}"), here.get(" ".join(REFERENCE))
    if eager and runtime:
        ratio = Ratio.per_round(eager.end_to_end.round_medians, runtime.end_to_end.round_medians)
        decision.ratios[f"runtime {FP32} {CPU} vs pytorch eager, batch {batch}"] = asdict(ratio)


def _cells(report: Report, m: Measured) -> list[str]:
    row = report.rows[m.candidate]
    s = row.get("scored")
    accuracy = f"{100 * s.accuracy:.2f} ({100 * s.interval[0]:.1f}–{100 * s.interval[1]:.1f})" if s else "n/a"
    verdict = s.verdict if s else "n/a"
    size = f"{row['size_mb']:.2f}" if row["size_mb"] is not None else "—"
    rss = f"{row['open_rss_mb']:.0f}" if row["open_rss_mb"] is not None else "n/a"
    joules = f"{m.energy['joules_per_image']:.4g}" if m.energy else "n/a"
    flag = " ⚠" if m.end_to_end.unstable or m.compute.unstable else ""
    return [
        row["file"], row["backend"], size, str(m.batch), accuracy, verdict,
        m.end_to_end.describe(), f"{m.end_to_end.stats.p99_ms:.3f}", f"{m.end_to_end.cov:.1%}{flag}",
        m.compute.describe(), f"{m.compute.cov:.1%}", f"{m.throughput:,.0f}", rss, joules,
    ]  # fmt: skip


HEADER = [
    "file", "backend", "MB", "batch", "accuracy % (95 % CI)", "vs FP32", "e2e p50 ms (p10–p90)", "e2e p99 ms",
    "e2e CoV", "compute p50 ms (p10–p90)", "compute CoV", "images/s", "peak RSS MB", "J/image",
]  # fmt: skip


def markdown(report: Report, decision: Decision) -> str:
    lines = [f"# edge bench all: {report.model} ({report.folder})", ""]
    lines += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_cells(report, m)) + " |" for m in report.measured]
    lines += ["", f"accuracy data: {report.data}", f"energy: {report.energy}"]
    lines += [f"note: {n}" for n in report.notes]
    lines += [f"not measured: {s.what} on {s.backend}: {s.reason}" for s in report.skipped]
    lines.append("")
    for batch, rec in decision.recommendations.items():
        lines.append(f"**recommended at batch {batch}: {rec['candidate'] or 'none'}** — {rec['reason']}")
    lines += [f"- {line}" for line in decision.int8]
    if decision.ratios:
        lines.append("\nspeed-ups from this run (median over rounds, with the rounds' range):")
        lines += [f"- {k}: {Ratio(**v).describe()}" for k, v in decision.ratios.items()]
    if decision.warnings:
        lines.append(f"\nWARNING: {len(decision.warnings)} timings are noisy or inconsistent; read them as such:")
        lines += [f"- {w}" for w in decision.warnings]
    return "\n".join(lines) + "\n"


def to_dict(report: Report, decision: Decision) -> dict:
    rows = {}
    for name, row in report.rows.items():
        s = row.get("scored")
        rows[name] = {**{k: v for k, v in row.items() if k != "scored"}, "accuracy": asdict(s) if s else None}
    return {
        "model": report.model,
        "folder": report.folder,
        "environment": environment(),
        "accuracy_data": report.data,
        "energy": report.energy,
        "candidates": rows,
        "measured": [
            {
                "candidate": m.candidate,
                "batch": m.batch,
                "end_to_end": m.end_to_end.to_dict(),
                "compute": m.compute.to_dict(),
                "throughput": m.throughput,
                "energy": m.energy,
            }
            for m in report.measured
        ],  # fmt: skip
        "skipped": [asdict(s) for s in report.skipped],
        "notes": report.notes,
        "recommendations": {str(b): r for b, r in decision.recommendations.items()},
        "int8_not_faster": decision.int8,
        "ratios": decision.ratios,
        "warnings": decision.warnings,
        "unstable": any("unstable" in w for w in decision.warnings),
    }


def csv_text(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    for m in report.measured:
        writer.writerow([c.replace(" ⚠", "") for c in _cells(report, m)])
    return buffer.getvalue()


def write_reports(report: Report, decision: Decision, out: Path) -> dict[str, str]:
    names = Artifacts(Path(out), report.model)
    Path(out).mkdir(parents=True, exist_ok=True)
    files = {
        "json": write_artifact(names.bench_json, json.dumps(to_dict(report, decision), indent=2) + "\n", Kind.REPORT),
        "csv": write_artifact(names.bench_csv, csv_text(report), Kind.TEXT),
        "markdown": write_artifact(names.bench_md, markdown(report, decision), Kind.TEXT),
    }
    png = plot(names.bench_png, report, decision)
    if png is not None:
        files["png"] = png
    return {k: str(v) for k, v in files.items()}


def plot(path: Path, report: Report, decision: Decision) -> Path | None:
    """One panel per batch size: p50 end to end per candidate as horizontal bars with p10–p90 whiskers, from zero;
    the recommended candidate in another colour; None without matplotlib (a device install)."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = _by_batch(report)
    fig, axes = plt.subplots(1, len(batches), figsize=(6.5 * len(batches), 0.5 * len(report.rows) + 2.2), squeeze=False)
    for ax, (batch, here) in zip(axes[0], sorted(batches.items())):
        _panel(ax, report, batch, list(here.values()), decision.recommendations.get(batch, {}).get("candidate"))
    fig.suptitle(f"{report.model}: end-to-end latency per file and backend (bars p50, whiskers p10–p90)")
    fig.tight_layout()
    return write_figure(fig, path)


def _panel(ax, report: Report, batch: int, rows: Sequence[Measured], best: str | None) -> None:
    labels, medians, low, high, colours = [], [], [], [], []
    for m in rows:
        s = report.rows[m.candidate].get("scored")
        labels.append(m.candidate + (f"\n{100 * s.accuracy:.1f} % acc" if s else ""))
        medians.append(m.end_to_end.median_ms)
        low.append(m.end_to_end.median_ms - m.end_to_end.p10_ms)
        high.append(m.end_to_end.stats.p90_ms - m.end_to_end.median_ms)
        colours.append("tab:green" if m.candidate == best else "tab:gray")
    ax.barh(range(len(rows)), medians, xerr=[low, high], color=colours, capsize=3)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(left=0)
    ax.set_xlabel(f"batch {batch}: end-to-end ms (green: recommended)")
    ax.grid(axis="x", alpha=0.3)
