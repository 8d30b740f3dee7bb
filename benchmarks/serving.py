"""``python -m benchmarks triton --model FILE``: a load test through the real Triton server beside our in-process
batcher.

For each concurrency (default 1, 2, 4, 8, 16), that many closed-loop clients send one encoded
image per request for ``--duration-s`` (after ``--warmup-s``), in two set-ups on the same model
and machine, one right after the other (``--rounds N`` alternates them N times and combines):

- ``in_process``: each client thread decodes and preprocesses its image, submits it to one
  ``runtime.batcher.DynamicBatcher`` around the model, and takes the top-k from its row;
- ``triton``: each client thread sends the PNG bytes with ``tritonclient`` (gRPC by default) to
  ``tritonserver`` (``serving.serve``) running the Python-backend model (``serving.repository --backend
  python``), which decodes, preprocesses, batches (Triton's dynamic batcher) and answers.

Both batchers get the same ``--max-batch`` and queue delay. Reports requests/s, p50/p95/p99 latency,
the mean batch each batcher formed, the CPU time spent per request by every process involved
(clients, ``tritonserver``, its Python stub: the server's overhead in a unit that other load on the
machine does not distort), the ratio triton / in_process of throughput, and the throughput ratio
the CPU times predict once the clients run elsewhere (in-process CPU per request / the server's); JSON, CSV
and a PNG (when matplotlib is there), with the machine. Images: ``--images DIR`` (real ones), else
the calibration set beside the model, else noise.
"""
# Over 400 lines: the in-process and Triton load generators must stay side by side so both modes run the same
# request schedule and statistics; the Triton client lives in serving/triton_client.py. The next split is the
# report writers (markdown/CSV) into their own module — not done in the session that noticed it, for lack of time.

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.latency import encoded_samples
from benchmarks.plots import log2_panels
from benchmarks.timing import environment, parse_batches, stats_from_samples
from formats.cli import EXIT_OK, EXIT_USER_ERROR, command_parser, error_boundary, thread_count
from formats.writer import Kind, add_force_argument, set_force, write_artifact, write_figure

MODES = ("in_process", "triton")


@dataclass(frozen=True)
class LoadSettings:
    concurrency: tuple[int, ...] = (1, 2, 4, 8, 16)
    duration_s: float = 3.0
    warmup_s: float = 0.5
    max_batch: int = 16
    max_delay_us: int = 500
    protocol: str = "grpc"
    top_k: int = 5
    threads: int | None = None  # ONNX Runtime intra-op threads, the same on both sides
    rounds: int = 1  # alternating in-process / Triton rounds per concurrency, combined (see combine())


@dataclass(frozen=True)
class LoadResult:
    mode: str
    concurrency: int
    requests: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    mean_batch: float
    cpu_ms_per_request: float | None = None  # all processes involved (client, server, stub); None off Linux
    server_cpu_ms_per_request: float | None = None  # triton: tritonserver and its stub only (clients excluded)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "throughput": self.throughput}


def closed_loop(
    clients: int, make_request: Callable[[int], Callable[[int], object]], warmup_s: float, duration_s: float
) -> tuple[list[float], float, int]:
    """``clients`` threads calling their request function back to back: latencies (ms) of the timed window,
    its length (s) and the number of requests sent in all (warm-up included).

    ``make_request(i)`` builds client ``i``'s function (its own connection); it is called with a
    running sequence number. A failed request stops the run with its error.
    """
    start = time.perf_counter() + warmup_s
    end = start + duration_s
    samples: list[list[float]] = [[] for _ in range(clients)]
    sent = [0] * clients
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            request = make_request(i)
            seq = 0
            while time.perf_counter() < end and not errors:
                t0 = time.perf_counter()
                request(seq)
                t1 = time.perf_counter()
                seq += 1
                sent[i] = seq
                if t0 >= start and t1 <= end:
                    samples[i].append((t1 - t0) * 1e3)
        except BaseException as exc:  # noqa: BLE001 — handed to the caller below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(warmup_s + duration_s + 60)
    if errors:
        raise errors[0]
    return [s for per in samples for s in per], duration_s, sum(sent)


def cpu_seconds(pids: Sequence[int]) -> float | None:
    """User + system CPU time of these processes so far (Linux /proc); None where it cannot be read."""
    import os

    total = 0.0
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return total


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (the server's Python-backend stubs)."""
    import os

    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            with open(f"/proc/{entry}/stat") as fh:
                if entry.isdigit() and int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _result(
    mode: str,
    concurrency: int,
    latencies: list[float],
    seconds: float,
    mean_batch: float,
    cpu_s: float | None,
    sent: int,
    server_cpu_s: float | None = None,
) -> LoadResult:
    if not latencies:
        raise RuntimeError(f"{mode} at concurrency {concurrency}: no request finished in {seconds} s; run longer")
    s = stats_from_samples(mode, latencies)
    return LoadResult(
        mode,
        concurrency,
        len(latencies),
        seconds,
        s.median_ms,
        s.p95_ms,
        s.p99_ms,
        s.mean_ms,
        mean_batch,
        1e3 * cpu_s / sent if cpu_s is not None and sent else None,
        1e3 * server_cpu_s / sent if server_cpu_s is not None and sent else None,
    )


def in_process_point(classifier, encoded: list[bytes], settings: LoadSettings, concurrency: int) -> LoadResult:
    from runtime.batcher import DynamicBatcher
    from runtime.postprocess import to_probabilities, top_k
    from runtime.preprocess import decode_image, preprocess

    spec = classifier.spec
    with DynamicBatcher(classifier.run, settings.max_batch, settings.max_delay_us / 1000.0) as batcher:

        def make(i: int):
            def request(seq: int):
                data = encoded[(i * 7919 + seq) % len(encoded)]
                row = batcher.submit(preprocess(decode_image(data), spec)).result(timeout=30)
                return top_k(to_probabilities(row[None], spec), spec, settings.top_k)

            return request

        cpu0 = cpu_seconds([os.getpid()])
        latencies, seconds, sent = closed_loop(concurrency, make, settings.warmup_s, settings.duration_s)
        cpu1 = cpu_seconds([os.getpid()])
        mean_batch = batcher.stats.mean_batch
    cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    return _result("in_process", concurrency, latencies, seconds, mean_batch, cpu, sent)


def triton_point(server, name: str, encoded: list[bytes], settings: LoadSettings, concurrency: int) -> LoadResult:
    from serving.triton_client import Protocol, TritonClassifier

    protocol = Protocol(settings.protocol)
    url = server.endpoints.grpc_url if protocol is Protocol.GRPC else server.endpoints.http_url
    before = _batch_counts(server, name)
    clients: list[TritonClassifier] = []

    def make(i: int):
        client = TritonClassifier(url, name, protocol)
        clients.append(client)
        return lambda seq: client.classify([encoded[(i * 7919 + seq) % len(encoded)]], f"c{i}-{seq}")

    server_pids = [server.pid, *child_pids(server.pid)]  # tritonserver and its Python-backend stubs
    cpu0, server0 = cpu_seconds([os.getpid()]), cpu_seconds(server_pids)
    try:
        latencies, seconds, sent = closed_loop(concurrency, make, settings.warmup_s, settings.duration_s)
    finally:
        for client in clients:
            client.close()
    cpu1, server1 = cpu_seconds([os.getpid()]), cpu_seconds(server_pids)
    after = _batch_counts(server, name)
    server_cpu = server1 - server0 if server0 is not None and server1 is not None else None
    cpu = cpu1 - cpu0 + server_cpu if cpu0 is not None and cpu1 is not None and server_cpu is not None else None
    return _result(
        "triton",
        concurrency,
        latencies,
        seconds,
        (after[0] - before[0]) / max(1, after[1] - before[1]),
        cpu,
        sent,
        server_cpu,
    )


def run_both(model: Path, encoded: list[bytes], settings: LoadSettings, log) -> list[LoadResult]:
    """Both set-ups ready at once; at each concurrency one runs right after the other, so slow drifts in
    the machine's load hit both alike."""
    from runtime.backends.table import BackendOptions, OnnxRuntimeOptions
    from runtime.model import Classifier
    from serving.repository import ServingBackend, TritonOptions, write_repository
    from serving.triton_server import ServerOptions, TritonServer

    results = []
    with tempfile.TemporaryDirectory(prefix="triton_bench_") as tmp:
        options = TritonOptions(
            max_batch=settings.max_batch,
            preferred_batches=(),
            top_k=settings.top_k,
            max_queue_delay_us=settings.max_delay_us,
            threads=settings.threads,
        )
        name = write_repository(model, Path(tmp) / "repo", options=options, backend=ServingBackend.PYTHON).name
        server_options = ServerOptions(
            repo=Path(tmp) / "repo", http_port=0, grpc_port=0, metrics_port=0, log_file=Path(tmp) / "tritonserver.log"
        )
        with (
            Classifier.from_path(model, BackendOptions(OnnxRuntimeOptions(threads=settings.threads))) as classifier,
            TritonServer(server_options) as server,
        ):
            for concurrency in settings.concurrency:
                rounds = [
                    (
                        in_process_point(classifier, encoded, settings, concurrency),
                        triton_point(server, name, encoded, settings, concurrency),
                    )
                    for _ in range(max(1, settings.rounds))
                ]
                pair = tuple(combine([r[i] for r in rounds]) for i in range(2))
                results += pair
                log(
                    f"  c={concurrency:>2}: "
                    + " | ".join(
                        f"{r.mode} {r.throughput:.0f} req/s, p99 {r.p99_ms:.2f} ms, "
                        f"mean batch {r.mean_batch:.1f}, CPU {_ms(r.cpu_ms_per_request)}"
                        f" ms/request"
                        for r in pair
                    )
                )
    return results


def _batch_counts(server, name: str) -> tuple[int, int]:
    """(inferences, executions) so far: their ratio is the mean batch Triton's dynamic batcher formed."""
    stats = json.loads(server._http("GET", f"/v2/models/{name}/stats") or b"{}").get("model_stats", [{}])[0]
    return stats.get("inference_count", 0), stats.get("execution_count", 0)


def combine(rounds: Sequence[LoadResult]) -> LoadResult:
    """Rounds of one mode and concurrency as one result: requests and seconds add up (throughput over all
    of them), latency percentiles are the median over rounds, batch and CPU the request-weighted mean."""
    import statistics

    if len(rounds) == 1:
        return rounds[0]
    total = sum(r.requests for r in rounds)

    def weighted(field: str) -> float | None:
        values = [getattr(r, field) for r in rounds]
        return None if any(v is None for v in values) else sum(v * r.requests for v, r in zip(values, rounds)) / total

    median = lambda field: statistics.median(getattr(r, field) for r in rounds)  # noqa: E731
    return LoadResult(
        rounds[0].mode,
        rounds[0].concurrency,
        total,
        sum(r.seconds for r in rounds),
        median("p50_ms"),
        median("p95_ms"),
        median("p99_ms"),
        weighted("mean_ms"),
        weighted("mean_batch"),
        weighted("cpu_ms_per_request"),
        weighted("server_cpu_ms_per_request"),
    )


def report(model: Path, settings: LoadSettings, results: Sequence[LoadResult]) -> dict:
    by = {(r.mode, r.concurrency): r for r in results}
    rows = []
    for c in settings.concurrency:
        a, b = by.get(("in_process", c)), by.get(("triton", c))
        server_cpu = b.server_cpu_ms_per_request if b else None
        rows.append(
            {
                "concurrency": c,
                "in_process": a.to_dict() if a else None,
                "triton": b.to_dict() if b else None,
                "throughput_ratio": b.throughput / a.throughput if a and b and a.throughput else None,
                # CPU-bound throughput ratio with the load generator on other machines, as in production
                "server_cpu_ratio": a.cpu_ms_per_request / server_cpu
                if a and server_cpu and a.cpu_ms_per_request is not None
                else None,
            }
        )
    at8 = next((r for r in rows if r["concurrency"] == 8), {})
    return {
        "model": str(model),
        "environment": environment(),
        "settings": asdict(settings),
        "results": rows,
        "throughput_ratio_at_8": at8.get("throughput_ratio"),
        "server_cpu_ratio_at_8": at8.get("server_cpu_ratio"),
    }


def write_csv(path: Path, results: Sequence[LoadResult]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "mode",
            "concurrency",
            "requests",
            "throughput",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "mean_ms",
            "mean_batch",
            "cpu_ms_per_request",
            "server_cpu_ms_per_request",
        ]
    )
    for r in results:
        writer.writerow(
            [
                r.mode,
                r.concurrency,
                r.requests,
                f"{r.throughput:.1f}",
                f"{r.p50_ms:.3f}",
                f"{r.p95_ms:.3f}",
                f"{r.p99_ms:.3f}",
                f"{r.mean_ms:.3f}",
                f"{r.mean_batch:.2f}",
                _ms(r.cpu_ms_per_request),
                _ms(r.server_cpu_ms_per_request),
            ]
        )
    return write_artifact(path, buffer.getvalue(), Kind.TEXT)


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def figure(model: Path, results: Sequence[LoadResult]) -> Any:
    """Requests/s and p50/p99 latency against concurrent clients, one colour per set-up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for index, mode in enumerate(MODES):
        rows = sorted((r for r in results if r.mode == mode), key=lambda r: r.concurrency)
        x = [r.concurrency for r in rows]
        colour = f"C{index}"
        left.plot(x, [r.throughput for r in rows], marker="o", color=colour, label=mode)
        right.plot(x, [r.p50_ms for r in rows], marker="o", color=colour, label=f"{mode} p50")
        right.plot(x, [r.p99_ms for r in rows], marker="x", color=colour, linestyle="--", label=f"{mode} p99")
    return log2_panels(
        fig,
        ((left, "throughput (requests/s)"), (right, "latency (ms)")),
        "concurrent clients",
        f"{model.name}: Triton (Python backend) vs in-process DynamicBatcher",
    )


def plot(path: Path, model: Path, results: Sequence[LoadResult]) -> Path | None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # optional on a device
        return None
    return write_figure(figure(model, results), path)


EXAMPLES = ("edge bench triton --model artifacts/mnist_cnn/mnist_cnn.fp32.onnx --concurrency 1,4,16 --duration-s 3",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="model file (.onnx; spec beside it or embedded)")
    p.add_argument("--concurrency", default="1,2,4,8,16", help="comma-separated client counts (default 1,2,4,8,16)")
    p.add_argument("--duration-s", type=float, default=3.0, help="timed seconds per point (default 3)")
    p.add_argument("--warmup-s", type=float, default=0.5, help="untimed seconds before each point (default 0.5)")
    p.add_argument("--max-batch", type=int, default=16, help="both batchers' largest batch (default 16)")
    p.add_argument("--max-delay-us", type=int, default=500, help="both batchers' queue delay (default 500 µs)")
    p.add_argument("--protocol", choices=("grpc", "http"), default="grpc", help="Triton client protocol (default grpc)")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="alternate the two set-ups this many times per concurrency, then combine (default 1)",
    )
    p.add_argument(
        "--threads",
        type=thread_count(),
        default=None,
        help="ONNX Runtime intra-op threads on both sides (default: its choice)",
    )
    p.add_argument("--images", type=Path, default=None, help="a folder of real images to send (default: see above)")
    p.add_argument("--out", type=Path, default=None, help="report folder (default: beside the model)")
    p.add_argument("--json", action="store_true", help="print the JSON report")
    add_force_argument(p)


def _images(args: argparse.Namespace) -> list[bytes]:
    if args.images is None:
        return encoded_samples(args.model)
    from runtime.preprocess import find_images

    files = find_images(args.images)[:256]
    if not files or not args.images.is_dir():
        raise ValueError(f"--images {args.images}: expected a folder of image files")
    return [f.read_bytes() for f in files]


def run(args: argparse.Namespace) -> int:
    set_force(args.force)

    try:
        settings = LoadSettings(
            tuple(parse_batches(args.concurrency)),
            args.duration_s,
            args.warmup_s,
            args.max_batch,
            args.max_delay_us,
            args.protocol,
            threads=args.threads,
            rounds=args.rounds,
        )
        encoded = _images(args)
    except ValueError as exc:
        print(f"error: {str(exc).replace('--batch', '--concurrency')}", file=sys.stderr)
        return EXIT_USER_ERROR
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    results = run_both(args.model, encoded, settings, log)
    doc = report(args.model, settings, results)
    out = args.out or args.model.parent
    stem = out / f"{args.model.name}.triton"
    write_artifact(Path(f"{stem}.json"), json.dumps(doc, indent=2) + "\n", Kind.REPORT)
    write_csv(Path(f"{stem}.csv"), results)
    plot(Path(f"{stem}.png"), args.model, results)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        for row in doc["results"]:
            a, b = row["in_process"], row["triton"]
            print(
                f"c={row['concurrency']:>2}: in_process {a['throughput']:.0f} req/s (p99 {a['p99_ms']:.2f} ms) | "
                f"triton {b['throughput']:.0f} req/s (p99 {b['p99_ms']:.2f} ms) | ratio {row['throughput_ratio']:.2f}"
                + (f" | server CPU ratio {row['server_cpu_ratio']:.2f}" if row["server_cpu_ratio"] else "")
            )
        print(f"written: {stem}.{{json,csv,png}}")
    return EXIT_OK


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    parser = command_parser("bench triton", __doc__, EXAMPLES)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
