"""Helpers shared by the benchmark scripts: machine description, process memory, child processes, JSON files."""

import datetime
import importlib.metadata
import os
import platform
import sys
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def module_command(module, *args):
    """The command line that runs ``module`` (e.g. ``"benchmarks.paper_benchmark"``) with this
    Python, as ``python -m``; run it with `child_env` so that the repository is importable."""
    return [sys.executable, "-m", module, *args]


def child_env(**overrides):
    """This process's environment, with the repository first on ``PYTHONPATH`` and `overrides`
    set: a child started from any directory imports the same ``benchmarks``, ``examples``
    and library packages as this process."""
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path, **overrides)


def package_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_info():
    """The machine and library versions a benchmark ran on (imports TensorFlow and Keras)."""
    import keras
    import numpy as np
    import tensorflow as tf

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu
            )
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tf_keras": package_version("tf-keras"),
        "tfmot": package_version("tensorflow-model-optimization"),
        "ai_edge_litert": package_version("ai-edge-litert"),
        "zstandard": package_version("zstandard"),
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
    }


def memory_kib():
    """(VmRSS, VmHWM) of this process in KiB, from /proc/self/status (Linux)."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def reset_peak_rss():
    """Resets VmHWM to the current RSS (Linux ≥ 4.0: write 5 to clear_refs). Returns success."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def run_child(cmd, log_path, timeout):
    """Runs `cmd` with its output in `log_path`, killed after `timeout` seconds.

    Returns:
        (returncode, timed_out, wall seconds).
    """
    import subprocess
    import time

    t0 = time.perf_counter()
    timed_out = False
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env())
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
            timed_out = True
    return rc, timed_out, time.perf_counter() - t0


def write_json(path, obj):
    """Writes `obj` as indented JSON to `path` atomically (temp file + rename): an interrupted
    write leaves the old file or none, never half of one. Values JSON does not know are
    written as ``str``."""
    import json
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, default=str)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
