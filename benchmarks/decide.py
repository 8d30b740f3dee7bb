"""``edge bench all``'s measurement: the candidates (every file × backend this machine can run, and what it cannot
with why), the labelled data (the card's held-out split, else the bundled sample), accuracy with the gate's verdict
against FP32, peak memory, energy, and the interleaved timing rounds. The CLI is ``benchmarks.bench_all``; the
decision and the reports are ``benchmarks.decide_report``.
"""
# Over 400 lines: one command's measurement, whose parts (candidates, data, scoring, memory, energy, rounds) share
# the Report it fills; the CLI (bench_all.py) and the decision and writers (decide_report.py) are already apart.

from __future__ import annotations

import functools
import importlib.util
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.noise import Spread
from formats.artifacts import ONNX_PRECISIONS, TENSORRT_PRECISIONS, Artifacts, Precision
from formats.errors import InputError, RuntimeToolkitError
from formats.holdout import load_holdout
from harness.compare import Runner
from runtime.backends.table import BackendOptions, OnnxRuntimeOptions
from runtime.model import Classifier, open_backend
from runtime.preprocess import normalize, prepare_pixels
from runtime.providers import CudaOptions
from runtime.spec import ModelSpec

CPU, CUDA, CUDA_GRAPH, TENSORRT, EAGER = "ort-cpu", "ort-cuda", "ort-cuda-graph", "tensorrt", "pytorch-eager"
REFERENCE = (Precision.FP32.value, CPU)  # every verdict is against the FP32 file on ONNX Runtime's CPU provider
WARMUP_CALLS = 3  # untimed calls of each candidate at each batch size before the rounds
NOT_FASTER = 0.95  # INT8 must be at least 5 % faster than the best FP16/FP32 on its backend to count as faster


@dataclass(frozen=True)
class Candidate:
    precision: str  # "fp32", "int8.ort", …
    backend: str  # CPU, CUDA, CUDA_GRAPH, TENSORRT, EAGER
    file: Path | None  # None: PyTorch eager (the checkpoint)
    make: Callable[[], Classifier]

    @property
    def name(self) -> str:
        return f"{self.precision} {self.backend}"

    @property
    def int8(self) -> bool:
        return self.precision in (Precision.INT8, Precision.INT8_ORT)


@dataclass(frozen=True)
class Skipped:
    what: str  # a file name or a backend
    backend: str
    reason: str


@dataclass(frozen=True)
class Labelled:
    images: np.ndarray
    labels: np.ndarray
    source: str  # which data, in words: "mnist/test (10,000 images, data set at data/)"
    int8_max_drop: float
    min_agreement: float


@dataclass
class Measured:
    """One candidate at one batch size."""

    candidate: str
    batch: int
    end_to_end: Spread
    compute: Spread
    energy: dict | None = None  # J/image, W, source, conditions; None where no power source is readable

    @property
    def throughput(self) -> float:
        return self.end_to_end.stats.throughput


@dataclass
class Scored:
    """One candidate's accuracy on the labelled data, its verdict against the FP32 reference."""

    accuracy: float
    interval: tuple[float, float]
    images: int
    verdict: str  # "reference", "within budget", "beyond budget", "inconclusive: …"
    budget: str
    judgement: dict | None = None


@dataclass
class Report:
    model: str
    folder: str
    rows: dict[str, dict] = field(default_factory=dict)  # candidate name → file, backend, size, accuracy, memory
    measured: list[Measured] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    data: str = "none"
    energy: str = "n/a (no power source)"  # where the J/image come from, or why there are none
    notes: list[str] = field(default_factory=list)


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def model_name(folder: Path, model: str | None) -> str:
    if model:
        return model
    suffix = Artifacts(folder, "m").onnx(Precision.FP32).name[1:]  # what follows the model's name
    found = sorted(p.name[: -len(suffix)] for p in folder.glob("*" + suffix))
    if len(found) != 1:
        raise InputError(
            f"{folder}: expected one <model>.fp32.onnx (what `edge export` writes), found "
            f"{', '.join(found) or 'none'}; pass --model NAME or the model's folder"
        )
    return found[0]


def _ort(providers: str | None, cuda: CudaOptions | None = None) -> BackendOptions:
    return BackendOptions(OnnxRuntimeOptions(providers=providers, cuda=cuda or CudaOptions()))


def _file_candidate(path: Path, precision: str, backend: str, options: BackendOptions | None) -> Candidate:
    return Candidate(precision, backend, path, lambda: Classifier(open_backend(path, options), None, str(path)))


def candidates(folder: Path, model: str, batch: int, with_torch: bool) -> tuple[list[Candidate], list[Skipped]]:
    """Every file × every backend of the backend table this machine can run, and what it cannot, with why."""
    from runtime.backends.onnxruntime import available_providers

    names, found, skipped = Artifacts(folder, model), [], []
    cuda = "CUDAExecutionProvider" in available_providers()
    for precision in ONNX_PRECISIONS:
        path = names.onnx(precision)
        if not path.is_file():
            continue
        found.append(_file_candidate(path, str(precision), CPU, _ort("cpu")))
        if precision is Precision.INT8_ORT:
            skipped.append(Skipped(path.name, "ort-cuda", "ONNX Runtime's CPU operator form: CPU only"))
        elif cuda:
            found.append(_file_candidate(path, str(precision), CUDA, _ort("cuda", CudaOptions(io_binding=True))))
            graphs = CudaOptions(cuda_graph=True, graph_batches=(1, batch))
            found.append(_file_candidate(path, str(precision), CUDA_GRAPH, _ort("cuda", graphs)))
    if not cuda:
        skipped.append(Skipped("*.onnx", "ort-cuda", "this onnxruntime has no CUDAExecutionProvider (CPU wheel)"))
    plans = [(p, names.plan(p)) for p in TENSORRT_PRECISIONS if names.plan(p).is_file()]
    for precision, plan in plans:
        found.append(_file_candidate(plan, str(precision), TENSORRT, None))
    if not plans:
        skipped.append(
            Skipped("*.plan", TENSORRT, f"no plans here (build one: `edge build --onnx {names.onnx('fp32')}`)")
        )
    found.extend(_eager(names, with_torch, skipped))
    return found, skipped


def _eager(names: Artifacts, with_torch: bool, skipped: list[Skipped]) -> list[Candidate]:
    why = (
        "left out (--no-torch)"
        if not with_torch
        else "torch is not installed (device profile)"
        if not _have("torch")
        else f"no checkpoint {names.checkpoint.name} here (a bundle ships none)"
        if not names.checkpoint.is_file()
        else None
    )
    if why:
        skipped.append(Skipped(names.checkpoint.name, EAGER, why))
        return []

    def make() -> Classifier:
        from harness.compare import torch_runner
        from train.checkpoint import load_checkpoint

        ckpt = load_checkpoint(names.checkpoint)
        return torch_runner(ckpt.model, ckpt.spec, EAGER, batch_size=None).classifier

    return [Candidate(Precision.FP32.value, EAGER, None, make)]


def labelled_data(folder: Path, model: str, spec: ModelSpec, data_dir: Path | None) -> tuple[Labelled | None, str]:
    """The card's held-out split when the data set is here (and PyTorch, which the card needs), else the sample
    the bundle ships; (None, why) when neither."""
    note = ""
    if data_dir is not None and _have("torch"):
        from calibration.statistics import MIN_AGREEMENT
        from train.cards import TEST, card_of, load_split
        from train.errors import DataError, TrainError

        try:
            split = load_split(spec, data_dir, TEST)
            card = card_of(spec)
            source = f"{split.dataset}/{split.split}, the card's held-out split ({len(split.labels):,} images)"
            return Labelled(split.images, split.labels, source, card.int8_max_drop_pp / 100, MIN_AGREEMENT), ""
        except (DataError, TrainError) as exc:
            note = f"held-out split not read ({exc}); "
    elif data_dir is not None:
        note = "the card's split loader needs PyTorch (not in this venv); "
    sample = load_holdout(folder, model)
    if sample is None:
        return None, note + f"no labelled data: pass --data-dir or ship {Artifacts(folder, model).holdout_sample.name}"
    info = sample.info
    source = (
        f"{info.source}, a seeded sample of {len(sample.labels)} of {info.drawn_from:,} images shipped as "
        f"{Artifacts(folder, model).holdout_sample.name}"
    )
    return Labelled(sample.images, sample.labels, source, info.int8_max_drop, info.min_agreement), note


def top1(classifier: Classifier, images: np.ndarray, batch: int, prepared: list | None = None) -> np.ndarray:
    """Top-1 class of every image; ``prepared`` caches (spec, model input) pairs, since preprocessing a split (the
    MNIST deploy path: milliseconds per image) is the same work for every file of one spec."""
    prepared = [] if prepared is None else prepared
    ready = next((r for spec, r in prepared if spec == classifier.spec), None)
    if ready is None:
        ready = normalize(prepare_pixels(images, classifier.spec), classifier.spec)
        prepared.append((classifier.spec, ready))
    return classifier.run(ready, batch if classifier.static_batch is None else classifier.static_batch).argmax(1)


def score(labels: np.ndarray, reference: np.ndarray, predicted: np.ndarray, c: Candidate, data: Labelled) -> Scored:
    # the gate's statistics (numpy only), imported here: importing `edge bench` loads nothing of calibration/
    from calibration.statistics import PairedTable, judge_agreement, judge_drop, wilson_interval

    right = int((predicted == labels).sum())
    interval = wilson_interval(right, len(labels))
    if (c.precision, c.backend) == REFERENCE:
        budget = "the reference"
        return Scored(right / len(labels), (interval.low, interval.high), len(labels), "reference", budget)
    table, agreeing = PairedTable.from_predictions(labels, reference, predicted), int((predicted == reference).sum())
    if c.int8:
        judgement = judge_drop(table, agreeing, data.int8_max_drop)
        budget = f"accuracy drop ≤ {100 * data.int8_max_drop:g} pp vs FP32"
    else:
        judgement = judge_agreement(table, agreeing, data.min_agreement)
        budget = f"top-1 agreement ≥ {data.min_agreement:.1%} with FP32"
    return Scored(
        right / len(labels), (interval.low, interval.high), len(labels), judgement.describe(), budget,
        judgement.to_dict(),
    )  # fmt: skip


def peak_rss_mb(fn: Callable[[], object]) -> float | None:
    """Peak resident memory ``fn`` adds (MiB): Linux's high-water mark, reset first (``/proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_kb("VmRSS")
    except OSError:
        return None
    fn()
    peak = _status_kb("VmHWM")
    return None if before is None or peak is None else max(0.0, (peak - before) / 1024)


def _status_kb(key: str) -> int | None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def power_meter() -> tuple[object | None, str]:
    """``benchmarks.power``'s meter where a source is readable; (None, why) otherwise."""
    try:
        from benchmarks import power
    except ImportError:
        return None, "n/a (no power layer in this install)"
    if not hasattr(power, "find_meter"):
        return None, "n/a (no power layer in this install)"
    meter = power.find_meter("auto")
    return (meter, f"from {meter.source}") if meter is not None else (None, "n/a (no power source)")


def energy(meter, fn: Callable[[], object], images: int) -> dict | None:
    """J/image net of idle over one timed block, with the conditions (power mode, clocks, throttling)."""
    with meter.window() as window:
        fn()
    window = getattr(window, "result", window)
    if not callable(getattr(window, "joules_per", None)):
        return None
    conditions = getattr(window, "conditions", None)
    if hasattr(conditions, "__dataclass_fields__"):
        from dataclasses import asdict

        conditions = asdict(conditions)
    return {
        "joules_per_image": window.joules_per(images),
        "avg_watts": window.avg_watts,
        "idle_watts": window.idle_watts,
        "source": window.source,
        "conditions": conditions if isinstance(conditions, dict) else str(conditions),
    }


def _timed(fn: Callable[[], object], iterations: int) -> list[float]:
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def measure_batch(
    opened: dict[str, tuple[Candidate, Classifier]],
    images: np.ndarray,
    batch: int,
    rounds: int,
    iterations: int,
    meter,
    report: Report,
) -> None:
    """Every candidate at one batch size, interleaved: each round times every candidate in turn (the order
    rotates by one each round), so a neighbour's load hits all of them alike."""
    pixels = np.resize(images, (batch,) + images.shape[1:])  # real samples repeated up to the batch
    calls: dict[str, tuple[Callable, Callable]] = {}
    for name, (c, classifier) in opened.items():
        if classifier.static_batch not in (None, batch):
            report.skipped.append(Skipped(name, c.backend, f"static batch {classifier.static_batch}: not {batch}"))
            continue
        ready = normalize(prepare_pixels(pixels, classifier.spec), classifier.spec)
        runner = Runner(name, classifier, probabilities=True, batch_size=None)
        try:
            for _ in range(WARMUP_CALLS):  # warm-up (first-call allocations), and the check that this batch runs
                runner(pixels), classifier.run(ready)
        except (RuntimeToolkitError, RuntimeError, ValueError) as exc:
            report.skipped.append(Skipped(name, c.backend, f"batch {batch} not run: {str(exc).splitlines()[0]}"))
            continue
        calls[name] = (functools.partial(runner, pixels), functools.partial(classifier.run, ready))
    e2e: dict[str, list[list[float]]] = {n: [] for n in calls}
    compute: dict[str, list[list[float]]] = {n: [] for n in calls}
    order = list(calls)
    for r in range(rounds):
        for name in order[r % len(order) :] + order[: r % len(order)] if order else []:
            whole, part = calls[name]
            e2e[name].append(_timed(whole, iterations))
            compute[name].append(_timed(part, iterations))
    for name in order:
        joules = energy(meter, lambda n=name: _timed(calls[n][0], iterations), batch * iterations) if meter else None
        report.measured.append(
            Measured(name, batch, Spread.of("end_to_end", e2e[name], batch), Spread.of("compute", compute[name], batch),
                     joules)
        )  # fmt: skip


def run_all(
    folder: Path,
    model: str | None = None,
    data_dir: Path | None = None,
    batch: int = 64,
    rounds: int = 5,
    iterations: int = 20,
    with_torch: bool = True,
    log: Callable[[str], None] = print,
) -> Report:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            f"{folder}: not a folder; pass a model folder (what `edge export`/`edge calibrate` write) or an unpacked "
            "bundle (`edge bundle unpack X.bundle.tar.gz --out DIR`)"
        )
    model = model_name(folder, model)
    names = Artifacts(folder, model)
    if (folder / "BUNDLE.json").is_file():
        from formats.bundle import verify

        verify(folder)  # a bundle is a closed set: every checksum before anything is timed
    spec = ModelSpec.load(names.spec)
    report = Report(model, str(folder))
    found, report.skipped = candidates(folder, model, batch, with_torch)
    data, note = labelled_data(folder, model, spec, data_dir)
    report.data = data.source if data else note
    if note and data:
        report.notes.append(note.rstrip("; "))
    meter, report.energy = power_meter()
    images = data.images[:batch] if data else _blank(spec, batch)
    with ExitStack() as stack:
        opened = _open(found, stack, report, log)
        _score_all(opened, data, batch, report)
        for size in sorted({1, batch}):
            log(f"  timing batch {size}: {len(opened)} candidates × {rounds} interleaved rounds × {iterations} calls")
            measure_batch(opened, images, size, rounds, iterations, meter, report)
    return report


def _blank(spec: ModelSpec, count: int) -> np.ndarray:
    shape = (count, spec.height, spec.width) + ((spec.channels,) if spec.channels > 1 else ())
    return np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)


def _open(found: Sequence[Candidate], stack: ExitStack, report: Report, log) -> dict:
    opened = {}
    for c in found:
        holder: dict = {}

        def activate(c: Candidate = c, holder: dict = holder) -> None:
            holder["classifier"] = stack.enter_context(c.make())

        try:
            rss = peak_rss_mb(activate)
        except (RuntimeToolkitError, RuntimeError, OSError, ValueError) as exc:
            report.skipped.append(Skipped(c.file.name if c.file else c.name, c.backend, str(exc).splitlines()[0]))
            log(f"  {c.name}: not measured ({str(exc).splitlines()[0]})")
            continue
        size = c.file.stat().st_size / 2**20 if c.file else None
        opened[c.name] = (c, holder["classifier"])
        report.rows[c.name] = {
            "precision": c.precision,
            "backend": c.backend,
            "file": c.file.name if c.file else "(checkpoint)",
            "size_mb": size,
            "open_rss_mb": rss,
        }
    return opened


def _score_all(opened: dict, data: Labelled | None, batch: int, report: Report) -> None:
    if data is None:
        return
    prepared: list = []
    predictions = {name: top1(classifier, data.images, batch, prepared) for name, (_, classifier) in opened.items()}
    reference = predictions.get(" ".join(REFERENCE))
    if reference is None:
        report.notes.append("no FP32 file on ONNX Runtime's CPU provider: no verdicts against FP32")
        reference = next(iter(predictions.values()))
    for name, (c, _) in opened.items():
        report.rows[name]["scored"] = score(data.labels, reference, predictions[name], c, data)
