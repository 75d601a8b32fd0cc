"""One latency round in a fresh process: batch-1 LiteRT invokes of ``.tflite`` files, in turn.

Run by `benchmarks.sparse_speed.latency`, once per round and thread count: a
fresh process per round, because on this shared 2-core machine the speed of
LiteRT's sparse FULLY_CONNECTED kernel moves between two levels (~7 and ~13 µs
on LeNet-300-100) from one process, or one pause, to the next, while it stays
put within one stretch of invokes. Rounds in fresh processes, spaced in time,
sample both; the benchmark quotes their median.

    python -m benchmarks.invoke_round --threads=1 --repeats=400 dense.tflite sparse.tflite

Prints one JSON line: the median seconds of one ``invoke()`` per file, in order
(`converters.litert.median_invoke_seconds`).
"""

import json
import os

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_THREADS = flags.DEFINE_integer("threads", 1, "LiteRT threads.", lower_bound=1)
_REPEATS = flags.DEFINE_integer("repeats", 400, "Timed invokes per file.", lower_bound=1)
_WARMUP = flags.DEFINE_integer("warmup", 50, "Untimed invokes per file first.", lower_bound=0)


def main(argv):
    paths = argv[1:]
    if not paths:
        raise app.UsageError("give the .tflite files to time")
    from converters import litert

    flats = []
    for path in paths:
        with open(path, "rb") as f:
            flats.append(f.read())
    seconds = litert.median_invoke_seconds(
        flats, _REPEATS.value, _THREADS.value, warmup=_WARMUP.value
    )
    print(json.dumps(seconds), flush=True)


if __name__ == "__main__":
    app.run(main)
