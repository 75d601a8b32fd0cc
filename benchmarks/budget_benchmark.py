"""`keras_dc.compress_to_budget` over budgets and seeds, beside the paper preset, tfmot and the paper.

Collect mode (the default) reads every ``results.json`` that
``examples.budget_search`` wrote under ``--work`` (any depth), groups the runs per
model and budget, and prints per model one markdown table: per budget the seeds,
the test error of the restored bundle in LiteRT (mean ± sample std, min–max),
bundle bytes (mean ± sample std), the ratio against the dense float32 ``.tflite``
(mean, min–max), the validation error the search decided on (mean) and the wall
time (mean). With ``--paper_json`` (what ``benchmarks.paper_benchmark
--json_out`` writes; default ``<work>/paper.json`` when there) it adds the
paper's fixed recipe run with keras-dc (its bundle) and tfmot (its pruned +
clustered ``.tflite`` under zstd -19). Every table ends with the paper's own
point (Han et al. 2016: LeNet-300-100 40× at 1.58 %, LeNet-5 39× at 0.74 %),
*reported, not measured*: the paper counts weights + indices only, so its bytes
are the dense float32 ``.tflite`` bytes / the paper's ratio.

Per model it also draws ``<figure_dir>/budget_<model>.png``: test error against
bundle bytes (log scale), each seed a dot, each budget a mean with error bars
(± std), the budgets joined in order of their validation limit, the paper
preset, tfmot, the reported points (hollow markers), and dashed lines at the
targets of issue #11 (error: LeNet-300-100 1.64 %, LeNet-5 0.80 %; size: 150×
and 200× smaller than the dense ``.tflite``).

Run mode (``--run``) first runs ``examples.budget_search`` in a child process
for every model × budget × seed whose ``<work>/<model>/<budget>/seed<k>/results.json``
is missing (existing results are reused: an interrupted run resumes), one
progress line per run, each child's output in ``log.txt`` beside its results;
with ``--paper`` also ``benchmarks.paper_benchmark`` into ``<work>/paper.json``
when that file is missing. Then it collects as above.

    python -m benchmarks.budget_benchmark --work=out/budget                    # collect only
    python -m benchmarks.budget_benchmark --work=out/budget --paper_json=out/paper.json --json_out=out/budget.json
    python -m benchmarks.budget_benchmark --run --work=out/budget --budgets=max_error=0.015,max_increase=0.002
    python -m benchmarks.budget_benchmark --run --paper --work=out/budget --models=lenet_300_100,lenet5  # hours
    python -m benchmarks.budget_benchmark --run --smoke --seeds=0 --budgets=max_increase=0.5 --work=/tmp/bb
"""

import dataclasses
import json
import os
import statistics

from absl import app, flags

from benchmarks._common import ROOT, module_command, run_child, write_json

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODELS = ("lenet_300_100", "lenet5", "mobilenet")
BUDGET_KINDS = ("max_error", "max_increase")

# Issue #11's targets: the test error the paper's dense baseline had, and 150× / 200× smaller
# than the dense float32 .tflite.
ERROR_TARGETS = {"lenet_300_100": 0.0164, "lenet5": 0.0080}
RATIO_TARGETS = (150, 200)


@dataclasses.dataclass(frozen=True)
class Reported:
    """A published point, reported, not measured here.

    Attributes:
        source: Who reported it.
        ratio: Their compression ratio.
        error: Their top-1 test error (a fraction).
        counts: What their ratio counts.
        marker: Matplotlib marker of the point (drawn hollow).
    """

    source: str
    ratio: float
    error: float
    counts: str
    marker: str = "o"


REPORTED = {
    "lenet_300_100": (
        Reported("Han et al. 2016", 40, 0.0158, "weights + indices only"),
        Reported("Ullrich et al. 2017, soft weight-sharing", 64, 0.0194, "weights only", "D"),
    ),
    "lenet5": (
        Reported("Han et al. 2016", 39, 0.0074, "weights + indices only"),
        Reported("Ullrich et al. 2017, soft weight-sharing", 162, 0.0097, "weights only", "D"),
    ),
}


def _define_flags():
    """The command line (defined only when run as a script: tests import this module)."""
    global \
        _WORK, \
        _PAPER_JSON, \
        _FIGURE_DIR, \
        _JSON_OUT, \
        _RUN, \
        _MODELS, \
        _BUDGETS, \
        _SEEDS, \
        _PAPER, \
        _SMOKE, \
        _DATA, \
        _TIMEOUT, \
        _BYTES_FROM, \
        _BYTES_VARIANT
    _WORK = flags.DEFINE_string(
        "work", None, "Folder of budget_search run folders (each with a results.json, any depth)."
    )
    _PAPER_JSON = flags.DEFINE_string(
        "paper_json",
        None,
        "JSON written by benchmarks.paper_benchmark --json_out; default: <work>/paper.json when there.",
    )
    _FIGURE_DIR = flags.DEFINE_string(
        "figure_dir", None, "Folder for budget_<model>.png; default: docs/img of the repository."
    )
    _JSON_OUT = flags.DEFINE_string(
        "json_out", None, "Also write the aggregate as JSON to this file."
    )
    _RUN = flags.DEFINE_bool(
        "run", False, "Run the missing budget_search runs first, then collect."
    )
    _MODELS = flags.DEFINE_list("models", ["lenet_300_100"], f"--run: models, from {list(MODELS)}.")
    _BUDGETS = flags.DEFINE_list(
        "budgets",
        ["max_increase=0.002"],
        "--run: budgets, each max_error=<fraction> or max_increase=<fraction>.",
    )
    _SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "--run: seeds.")
    _PAPER = flags.DEFINE_bool(
        "paper",
        False,
        "--run: also run benchmarks.paper_benchmark into <work>/paper.json if missing.",
    )
    _SMOKE = flags.DEFINE_bool("smoke", False, "--run: pass --smoke to the children (tiny runs).")
    _DATA = flags.DEFINE_string("data", None, "--run: mnist.npz passed to the children.")
    _TIMEOUT = flags.DEFINE_integer("timeout", 6 * 3600, "--run: seconds before a child is killed.")
    _BYTES_FROM = flags.DEFINE_list(
        "bytes_from",
        [],
        "JSON files of benchmarks.skeleton_bytes --json_out: runs converted again with "
        "today's converter; their --bytes_variant rows replace the bytes and test error "
        "the runs recorded (same weights, a newer format).",
    )
    _BYTES_VARIANT = flags.DEFINE_string(
        "bytes_variant", "zdict", "--bytes_from: the skeleton_bytes variant to use."
    )


# --- statistics ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (n - 1; None for one value), min and max of some runs."""

    mean: float
    std: float
    min: float
    max: float

    @classmethod
    def of(cls, values):
        values = [float(v) for v in values]
        std = statistics.stdev(values) if len(values) > 1 else None
        return cls(statistics.fmean(values), std, min(values), max(values))


@dataclasses.dataclass(frozen=True)
class BudgetGroup:
    """The runs of one model under one budget.

    Attributes:
        kind: ``"max_error"`` or ``"max_increase"``.
        value: The budget (a fraction).
        seeds: The seeds found, sorted.
        limit: The validation error limit the search used, mean over the runs
            (``max_error``, or the dense validation error + ``max_increase``).
        test_error, bundle_bytes, ratio, validation_error, seconds: Over the runs.
        runs: The runs' results, in seed order.
        distill: The runs' distillation weight (``--distill``; 0: labels only).
        validation_images: Images the search decided on (``--validation``; runs
            before that flag used 5,000).
        calibrated: Whether the runs calibrated the learning rate first (a
            "calibrate" step in their step log; runs before ``calibrate_lr`` did not).
        centroid_update: The clustering's ``--centroid_update`` (runs before that
            flag: "auto", the paper's update).
        prune_share: ``--prune_share`` (runs before that flag: 0.75).
        gradual_epochs: Epochs of the search's gradual pruning stage
            (``--gradual_epochs``; runs before that flag had none: 0).
        variational_epochs, variational_kl: The search's variational stage
            (``--variational_epochs``, ``--variational_kl``; runs before those flags had
            none: 0 epochs, KL weight 1).
    """

    kind: str
    value: float
    seeds: tuple
    limit: float
    test_error: Summary
    bundle_bytes: Summary
    ratio: Summary
    validation_error: Summary
    seconds: Summary
    runs: tuple
    distill: float = 0.0
    validation_images: int = 5000
    calibrated: bool = False
    centroid_update: str = "auto"
    prune_share: float = 0.75
    gradual_epochs: float = 0.0
    variational_epochs: float = 0.0
    variational_kl: float = 1.0

    @property
    def label(self):
        text = budget_label(self.kind, self.value)
        if self.centroid_update != "auto":
            text += f", {self.centroid_update} centroid update"
        if self.prune_share != 0.75:
            text += f", prune share {self.prune_share:g}"
        if self.variational_epochs:
            text += f", variational {self.variational_epochs:g} ep KL {self.variational_kl:g}"
        if self.gradual_epochs:
            text += f", gradual {self.gradual_epochs:g} ep"
        if self.distill:
            text += f", distill {self.distill:g}"
        if self.validation_images != 10000:  # examples.budget_search's default since 2026-11-30
            text += f", {self.validation_images:,d} val"
        return text + (", calibrated lr" if self.calibrated else "")

    @property
    def method(self):
        """The label without the budget: the runs of one method at several budgets share it
        (the figure joins them in one line)."""
        parts = self.label.split(", ", 1)
        return parts[1] if len(parts) > 1 else "defaults"


def budget_of(result):
    """(kind, value) of a budget_search result: its ``max_error`` when set, else ``max_increase``."""
    if result.get("max_error") is not None:
        return "max_error", float(result["max_error"])
    return "max_increase", float(result["max_increase"])


def budget_label(kind, value):
    """``"≤1.50%"`` for an absolute limit, ``"+0.20%"`` for an increase over the dense model."""
    return f"≤{value:.2%}" if kind == "max_error" else f"+{value:.2%}"


def group_runs(results):
    """Groups results (budget_search dicts) per model, then per budget.

    Returns:
        ``{model: [BudgetGroup, ...]}``, each model's groups ordered by their
        validation limit, tightest first (the order the figure joins them in).
    """
    by_budget = {}
    for r in results:
        key = (
            *budget_of(r),
            float(r.get("distill") or 0.0),
            int(r.get("validation_images") or 5000),
            bool(r.get("calibrated")),
            r.get("centroid_update") or "auto",
            float(r.get("prune_share") or 0.75),
            float(r.get("gradual_epochs") or 0.0),
            float(r.get("variational_epochs") or 0.0),
            float(r.get("variational_kl", 1.0) if r.get("variational_epochs") else 1.0),
        )
        by_budget.setdefault(r["model"], {}).setdefault(key, []).append(r)
    out = {}
    for model, budgets in sorted(by_budget.items()):
        groups = []
        for key, runs in budgets.items():
            kind, value, distill, n_val, calibrated, update, share, gradual, vd, kl = key
            runs = tuple(sorted(runs, key=lambda r: r["seed"]))
            limits = [
                value if kind == "max_error" else r["dense_validation_error"] + value for r in runs
            ]
            groups.append(
                BudgetGroup(
                    kind=kind,
                    value=value,
                    seeds=tuple(r["seed"] for r in runs),
                    limit=statistics.fmean(limits),
                    test_error=Summary.of(r["test_error"] for r in runs),
                    bundle_bytes=Summary.of(r["bundle_bytes"] for r in runs),
                    ratio=Summary.of(r["dense_tflite_bytes"] / r["bundle_bytes"] for r in runs),
                    validation_error=Summary.of(r["validation_error"] for r in runs),
                    seconds=Summary.of(r["seconds"] for r in runs),
                    runs=runs,
                    distill=distill,
                    validation_images=n_val,
                    calibrated=calibrated,
                    centroid_update=update,
                    prune_share=share,
                    gradual_epochs=gradual,
                    variational_epochs=vd,
                    variational_kl=kl,
                )
            )
        out[model] = sorted(
            groups,
            key=lambda g: (
                g.limit,
                g.kind,
                g.value,
                g.distill,
                g.validation_images,
                g.calibrated,
                g.centroid_update,
                g.prune_share,
                g.gradual_epochs,
                g.variational_epochs,
                g.variational_kl,
            ),
        )
    return out


def find_results(work):
    """Every ``results.json`` under `work` (any depth), loaded, with its ``path`` added, and
    ``calibrated``: whether the step log next to it (``search.json``) has a calibration."""
    results = []
    for folder, _, files in sorted(os.walk(work)):
        if "results.json" in files:
            path = os.path.join(folder, "results.json")
            with open(path) as f:
                result = dict(json.load(f), path=path)
            if "calibrated" not in result and "search.json" in files:
                with open(os.path.join(folder, "search.json")) as f:
                    steps = json.load(f).get("steps", [])
                result["calibrated"] = any(s.get("stage") == "calibrate" for s in steps)
            results.append(result)
    return results


class BytesFromError(ValueError):
    """`--bytes_from` files that cannot be read or hold no usable skeleton_bytes rows."""


def converted_again(results, rows, variant):
    """`results` with the bytes and test error of the `variant` rows of `rows` (rows of
    ``benchmarks.skeleton_bytes``: the same weights converted again) for the runs they name,
    matched by run folder name; such a result gets ``bytes_from`` = `variant`. Raises
    BytesFromError (a ValueError) when `rows` are not such rows or none is of `variant`."""
    try:
        by_run = {
            os.path.basename(os.path.normpath(r["run"])): r for r in rows if r["variant"] == variant
        }
        for r in by_run.values():
            float(r["bundle_bytes"])
            float(r["test_error"])
    except (KeyError, TypeError, ValueError) as e:
        raise BytesFromError(f"not rows of benchmarks.skeleton_bytes: {e!r}") from None
    if not by_run:
        raise BytesFromError(f"no {variant!r} rows among {len(rows)} converted runs.")
    out = []
    for result in results:
        row = by_run.get(os.path.basename(os.path.dirname(result["path"])))
        if row is not None:
            result = dict(
                result,
                bundle_bytes=row["bundle_bytes"],
                test_error=row["test_error"],
                bytes_from=variant,
            )
        out.append(result)
    return out


# --- the other rows: paper preset, tfmot, reported ------------------------------


@dataclasses.dataclass(frozen=True)
class Point:
    """One row beside the budget groups: a single measured or reported (error, bytes)."""

    label: str
    error: float
    bytes: float
    dense_bytes: float
    seconds: float = None
    note: str = ""
    reported: bool = False
    marker: str = "o"

    @property
    def ratio(self):
        return self.dense_bytes / self.bytes


def paper_points(paper, model):
    """The paper preset (keras-dc bundle) and tfmot (zstd -19) rows of `paper` for `model`.

    Args:
        paper: What ``benchmarks.paper_benchmark --json_out`` wrote (``{"models": {name:
            {"keras_dc": ..., "tfmot": ...}}}``), or None.
        model: Model name.
    """
    entry = (paper or {}).get("models", {}).get(model)
    if not entry:
        return []
    smoke = " (SMOKE)" if paper.get("smoke") else ""
    k, t = entry["keras_dc"], entry.get("tfmot")
    dense = k["dense_tflite_bytes"]
    points = [
        Point(
            f"paper preset, keras-dc bundle{smoke}",
            k["bundle_error"],
            k["bundle_bytes"],
            dense,
            k.get("wall_s"),
            "fixed per-layer sparsity and bits, restored bundle in LiteRT",
            marker="s",
        )
    ]
    if t:
        points.append(
            Point(
                f"tfmot prune + cluster, .tflite zstd -19{smoke}",
                t["tflite_error"],
                t["clustered_tflite"]["zstd19"],
                dense,
                t.get("wall_s"),
                "same recipe in tf_keras, .tflite in LiteRT",
                marker="^",
            )
        )
    return points


def reported_points(model, dense_bytes):
    """The published points for `model`, their bytes = `dense_bytes` / their ratio."""
    return [
        Point(
            f"reported ({p.source}, {p.counts})",
            p.error,
            dense_bytes / p.ratio,
            dense_bytes,
            note=f"reported, not measured: bytes = dense .tflite / {p.ratio:g}",
            reported=True,
            marker=p.marker,
        )
        for p in REPORTED.get(model, ())
    ]


# --- report ------------------------------------------------------------------------

_HEAD = (
    "budget",
    "seeds",
    "test error (mean ± std)",
    "test error min–max",
    "bundle bytes (mean ± std)",
    "ratio vs dense (mean; min–max)",
    "validation error (mean)",
    "wall time (mean)",
)


def _row(cells):
    return "| " + " | ".join(cells) + " |"


def _pm(std, fmt):
    """`` ± <std>``, or `` (one run)`` when there is no sample std."""
    return " (one run)" if std is None else f" ± {std:{fmt}}"


def group_row(g):
    return _row(
        [
            g.label,
            ",".join(str(s) for s in g.seeds),
            f"{g.test_error.mean:.2%}{_pm(g.test_error.std, '.2%')}",
            f"{g.test_error.min:.2%}–{g.test_error.max:.2%}",
            f"{g.bundle_bytes.mean:,.0f}{_pm(g.bundle_bytes.std, ',.0f')}",
            f"{g.ratio.mean:.1f}× ({g.ratio.min:.1f}–{g.ratio.max:.1f})",
            f"{g.validation_error.mean:.2%}",
            f"{g.seconds.mean:,.0f} s",
        ]
    )


def point_row(p):
    return _row(
        [
            p.label,
            "",
            f"{p.error:.2%}",
            "",
            f"{p.bytes:,.0f}",
            f"{p.ratio:.1f}×",
            "",
            "" if p.seconds is None else f"{p.seconds:,.0f} s",
        ]
    )


def format_table(model, dense_bytes, groups, points):
    """The markdown table of one model: budget groups, then the other points, then notes."""
    lines = [
        f"### {model}: restored bundle in LiteRT on the test set; ratio vs the dense float32 "
        f".tflite ({dense_bytes:,.0f} B)",
        "",
        _row(_HEAD),
        _row(["---"] * len(_HEAD)),
    ]
    lines += [group_row(g) for g in groups]
    lines += [point_row(p) for p in points]
    notes = [p for p in points if p.reported]
    if groups:
        lines += [
            "",
            "Budgets: ≤x = validation error at most x; +x = at most x above the dense model's. "
            "std: sample (n − 1).",
        ]
    lines += [f"{p.label}: {p.note}." for p in notes]
    return "\n".join(lines)


def save_figure(path, model, dense_bytes, groups, points):
    """Writes the error-vs-bytes PNG of one model. Returns `path`, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(9, 6.5))
    palette = ("#1b9e77", "#e6ab02", "#1f78b4", "#a6761d", "#b15928", "#e7298a")
    series = {}
    for g in groups:  # one line per method, its budgets in order of their limit
        series.setdefault(g.method, []).append(g)
    for i, (method, members) in enumerate(series.items()):
        color = palette[i % len(palette)]
        for g in members:
            ax.scatter(
                [r["bundle_bytes"] for r in g.runs],
                [100 * r["test_error"] for r in g.runs],
                s=10,
                color=color,
                alpha=0.5,
                zorder=3,
            )
        means_x = [g.bundle_bytes.mean for g in members]
        means_y = [100 * g.test_error.mean for g in members]
        ax.plot(means_x, means_y, "-", color=color, lw=1, zorder=2)
        ax.errorbar(
            means_x,
            means_y,
            xerr=[g.bundle_bytes.std or 0.0 for g in members],
            yerr=[100 * (g.test_error.std or 0.0) for g in members],
            fmt="o",
            color=color,
            capsize=3,
            zorder=4,
            label=f"compress_to_budget: {method}",
        )
        for g, x, y in zip(members, means_x, means_y):
            text = budget_label(g.kind, g.value)
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    colors = {"s": "#7570b3", "^": "#d95f02", "o": "#444444", "D": "#999999"}
    for p in points:
        color = colors.get(p.marker, "#444444")
        ax.scatter(
            [p.bytes],
            [100 * p.error],
            marker=p.marker,
            s=60,
            zorder=5,
            facecolors="none" if p.reported else color,
            edgecolors=color,
            label=p.label.replace("reported (", "reported, not measured (")
            if p.reported
            else p.label,
        )
    target = ERROR_TARGETS.get(model)
    if target is not None:
        ax.axhline(100 * target, ls="--", color="#e7298a", lw=1)
        ax.annotate(
            f"error target {target:.2%}",
            (1, 100 * target),
            xycoords=("axes fraction", "data"),
            xytext=(-4, 3),
            textcoords="offset points",
            ha="right",
            fontsize=8,
            color="#e7298a",
        )
    for ratio in RATIO_TARGETS:
        x = dense_bytes / ratio
        ax.axvline(x, ls="--", color="#66a61e", lw=1)
        ax.annotate(
            f"{ratio}× smaller ({x:,.0f} B)",
            (x, 1),
            xycoords=("data", "axes fraction"),
            xytext=(-2, -4),
            textcoords="offset points",
            rotation=90,
            ha="right",
            va="top",
            fontsize=8,
            color="#66a61e",
        )
    ax.set_xscale("log")
    ax.set_xlabel("bundle bytes (log scale)")
    ax.set_ylabel("test error (%)")
    ax.set_title(f"{model}: test error vs bytes (dense float32 .tflite {dense_bytes:,.0f} B)")
    ax.grid(True, which="both", alpha=0.3)
    ax.margins(x=0.08, y=0.1)
    if groups:
        ax.annotate(
            "compress_to_budget: dots = seeds, bars = mean ± std, labels = validation budgets",
            (0.01, 0.01),
            xycoords="axes fraction",
            fontsize=7,
            color="#555555",
        )
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=1)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def collect(
    work, paper_json=None, figure_dir=None, json_out=None, log=print, bytes_from=(), variant="zdict"
):
    """Aggregates the runs under `work`: per model a table (logged) and a figure.

    Args:
        work: Folder searched (any depth) for ``results.json`` of budget_search.
        paper_json: ``benchmarks.paper_benchmark --json_out`` file; default:
            ``<work>/paper.json`` when there.
        figure_dir: Folder for ``budget_<model>.png``; default ``docs/img``.
        json_out: Also write the aggregate there.
        log: Where the tables go.
        bytes_from: ``benchmarks.skeleton_bytes`` JSON files; their `variant` rows replace
            the bytes and test errors of the runs they converted again (`converted_again`).
        variant: The skeleton_bytes variant to take from `bytes_from`.

    Returns:
        ``{"work", "paper_json", "models": {model: {"dense_tflite_bytes", "groups",
        "points", "table", "figure"}}}`` (groups and points as dicts).
    """
    if paper_json is None and os.path.exists(os.path.join(work, "paper.json")):
        paper_json = os.path.join(work, "paper.json")
    paper = None
    if paper_json:
        with open(paper_json) as f:
            paper = json.load(f)
    figure_dir = figure_dir or os.path.join(ROOT, "docs", "img")
    results = find_results(work)
    if bytes_from:
        rows = []
        for path in bytes_from:
            try:
                with open(path) as f:
                    rows.extend(json.load(f))
            except (OSError, ValueError, TypeError) as e:
                raise BytesFromError(f"{path}: {e}") from None
        results = converted_again(results, rows, variant)
        again = sum(1 for r in results if r.get("bytes_from"))
        log(f"bytes and test errors of {again} of {len(results)} runs: converted again ({variant})")
    grouped = group_runs(results)
    models = list(grouped) + [m for m in (paper or {}).get("models", {}) if m not in grouped]
    aggregate = {"work": work, "paper_json": paper_json, "models": {}}
    for model in models:
        groups = grouped.get(model, [])
        measured = paper_points(paper, model)
        if groups:
            dense_bytes = statistics.fmean(r["dense_tflite_bytes"] for g in groups for r in g.runs)
        else:
            dense_bytes = measured[0].dense_bytes
        points = measured + reported_points(model, dense_bytes)
        table = format_table(model, dense_bytes, groups, points)
        log(table)
        log("")
        figure = save_figure(
            os.path.join(figure_dir, f"budget_{model}.png"), model, dense_bytes, groups, points
        )
        if figure:
            log(f"figure: {figure}")
            log("")
        aggregate["models"][model] = {
            "dense_tflite_bytes": dense_bytes,
            "groups": [
                dict(dataclasses.asdict(g), label=g.label, runs=[r["path"] for r in g.runs])
                for g in groups
            ],
            "points": [dict(dataclasses.asdict(p), ratio=p.ratio) for p in points],
            "table": table,
            "figure": figure,
        }
    if not models:
        log(f"no results.json under {work}")
    if json_out:
        write_json(json_out, aggregate)
    return aggregate


# --- run mode ------------------------------------------------------------------------


def parse_budget(text):
    """``"max_error=0.015"`` → ``("max_error", 0.015)``; raises ValueError on anything else."""
    kind, sep, value = text.strip().partition("=")
    if not sep or kind not in BUDGET_KINDS:
        raise ValueError(
            f"budget {text!r}: expected max_error=<fraction> or max_increase=<fraction>, "
            "e.g. max_error=0.015."
        )
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"budget {text!r}: {value!r} is not a number.") from None
    if not 0 <= number < 1:
        raise ValueError(f"budget {text!r}: expected a fraction in [0, 1), e.g. 0.015.")
    return kind, number


def run_folder(work, model, kind, value, seed):
    """``<work>/<model>/<kind>=<value>/seed<seed>``: where one run writes its results."""
    return os.path.join(work, model, f"{kind}={value:g}", f"seed{seed}")


def _say(line):
    print(line, flush=True)


def run_missing(work, models, budgets, seeds, *, smoke=False, data=None, timeout=None, log=_say):
    """Runs ``examples.budget_search`` for every model × budget × seed without results.json.

    Returns:
        The folders whose run failed (their ``log.txt`` says why).
    """
    jobs = [(m, b, s) for m in models for b in budgets for s in seeds]
    failed = []
    for i, (model, (kind, value), seed) in enumerate(jobs, 1):
        folder = run_folder(work, model, kind, value, seed)
        head = f"[{i}/{len(jobs)}] {model} {kind}={value:g} seed {seed}:"
        results = os.path.join(folder, "results.json")
        if os.path.exists(results):
            log(f"{head} reused {results}")
            continue
        os.makedirs(folder, exist_ok=True)
        args = [f"--model={model}", f"--seed={seed}", f"--{kind}={value!r}", f"--out={folder}"]
        args += ["--smoke"] if smoke else []
        args += [f"--data={data}"] if data else []
        log(f"{head} running (log: {os.path.join(folder, 'log.txt')}) ...")
        rc, timed_out, seconds = run_child(
            module_command("examples.budget_search", *args),
            os.path.join(folder, "log.txt"),
            timeout,
        )
        if rc == 0 and os.path.exists(results):
            with open(results) as f:
                r = json.load(f)
            log(
                f"{head} done in {seconds:.0f} s: test error {r['test_error']:.2%}, "
                f"{r['bundle_bytes']:,} B ({r['ratio']:.1f}×)",
            )
        else:
            why = "timed out" if timed_out else f"exit status {rc}"
            log(f"{head} FAILED ({why}) after {seconds:.0f} s")
            failed.append(folder)
    return failed


def run_paper(work, models, *, smoke=False, data=None, timeout=None, log=_say):
    """Runs ``benchmarks.paper_benchmark`` into ``<work>/paper.json`` unless it is there.

    Returns:
        True when ``paper.json`` is there afterwards.
    """
    path = os.path.join(work, "paper.json")
    if os.path.exists(path):
        log(f"paper benchmark: reused {path}")
        return True
    models = [m for m in models if m in ERROR_TARGETS]
    if not models:
        log("paper benchmark: none of --models is a paper model (lenet_300_100, lenet5); skipped")
        return False
    os.makedirs(work, exist_ok=True)
    args = [f"--json_out={path}", f"--models={','.join(models)}", f"--out={work}/paper"]
    args += ["--smoke"] if smoke else []
    args += [f"--data={data}"] if data else []
    log_path = os.path.join(work, "paper_log.txt")
    log(f"paper benchmark: running (log: {log_path}) ...")
    rc, timed_out, seconds = run_child(
        module_command("benchmarks.paper_benchmark", *args), log_path, timeout
    )
    ok = rc == 0 and os.path.exists(path)
    why = "" if ok else f" FAILED ({'timed out' if timed_out else f'exit status {rc}'})"
    log(f"paper benchmark: done in {seconds:.0f} s{why}")
    return ok


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not _WORK.value:
        raise app.UsageError("--work is required: the folder of budget_search run folders.")
    failed = []
    if _RUN.value:
        unknown = sorted(set(_MODELS.value) - set(MODELS))
        if unknown:
            raise app.UsageError(f"--models: unknown {unknown}; choose from {list(MODELS)}.")
        try:
            budgets = [parse_budget(b) for b in _BUDGETS.value]
            seeds = [int(s) for s in _SEEDS.value]
        except ValueError as e:
            raise app.UsageError(f"--budgets/--seeds: {e}") from None
        failed = run_missing(
            _WORK.value,
            _MODELS.value,
            budgets,
            seeds,
            smoke=_SMOKE.value,
            data=_DATA.value,
            timeout=_TIMEOUT.value,
        )
        if _PAPER.value and not run_paper(
            _WORK.value,
            _MODELS.value,
            smoke=_SMOKE.value,
            data=_DATA.value,
            timeout=_TIMEOUT.value,
        ):
            failed.append(os.path.join(_WORK.value, "paper.json"))
        print()
    try:
        collect(
            _WORK.value,
            _PAPER_JSON.value,
            _FIGURE_DIR.value,
            _JSON_OUT.value,
            bytes_from=_BYTES_FROM.value,
            variant=_BYTES_VARIANT.value,
        )
    except BytesFromError as e:
        raise app.UsageError(f"--bytes_from: {e}") from None
    if failed:
        print(f"{len(failed)} run(s) failed (see their log.txt): " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    _define_flags()
    app.run(main)
