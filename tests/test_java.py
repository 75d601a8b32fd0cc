"""The Java restorer (android/core) on the JVM: its JUnit suite, and a Python → Java round trip.

The core is compiled with `javac --release 8` (the language level Android needs) into a
temporary directory, with its resources (the ZLIB_DICT dictionary) copied beside the
classes as a build would; the JUnit 5 console launcher runs its tests against the golden
bundles of tests/golden/. A missing JDK or JUnit is a failure, not a skip: `make java-deps`
installs both.
"""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from conftest import JUNIT_SUMMARY, JUNIT_SUMMARY_PROPERTY

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORE = os.path.join(ROOT, "android", "core")
GOLDEN = os.path.join(ROOT, "tests", "golden")
LAUNCHER = "/usr/share/java/junit-platform-console-standalone.jar"  # Debian package junit5


def _sources(kind):
    root = os.path.join(CORE, "src", kind, "java")
    found = [
        os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f.endswith(".java")
    ]
    assert found, f"no Java sources under {root}"
    return sorted(found)


def _run(cmd, timeout):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory):
    """(main classes dir, test classes dir), compiled with --release 8."""
    missing = [tool for tool in ("javac", "java") if shutil.which(tool) is None]
    if missing or not os.path.isfile(LAUNCHER):
        pytest.fail(
            f"the Java tests need a JDK and JUnit 5 (missing: {missing or [LAUNCHER]}); "
            "run `make java-deps` (apt-get install default-jdk-headless junit5)."
        )
    out = tmp_path_factory.mktemp("java")
    main, test = str(out / "main"), str(out / "test")
    # The core alone: proves it needs nothing beyond the Java 8 platform.
    compiled = _run(
        ["javac", "--release", "8", "-Xlint:all", "-Werror", "-d", main] + _sources("main"), 300
    )
    if compiled.returncode:
        pytest.fail("javac (core) failed:\n" + compiled.stdout + compiled.stderr)
    shutil.copytree(os.path.join(CORE, "src", "main", "resources"), main, dirs_exist_ok=True)
    compiled = _run(
        ["javac", "--release", "8", "-cp", os.pathsep.join([main, LAUNCHER]), "-d", test]
        + _sources("test"),
        300,
    )
    if compiled.returncode:
        pytest.fail("javac (tests) failed:\n" + compiled.stdout + compiled.stderr)
    return main, test


@pytest.fixture(scope="module")
def junit_run(java_classes, tmp_path_factory):
    """The JUnit launcher over the whole Java suite, started in the background.

    The round-trip test below requests it too, so the JVM runs while Python trains and
    converts its model; `test_junit_suite_passes` waits for the result.
    """
    main, test = java_classes
    log = tmp_path_factory.mktemp("junit") / "launcher.log"
    with open(log, "w") as sink:
        process = subprocess.Popen(
            [
                "java",
                f"-Dkerasdc.golden.dir={GOLDEN}",
                "-jar",
                LAUNCHER,
                "-cp",
                os.pathsep.join([main, test]),
                "--select-package",
                "dev.kerasdc.bundle",
                "--select-package",
                "dev.kerasdc.tensor",
                "--disable-banner",
                "--disable-ansi-colors",
                "--details=summary",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    yield process, log
    if process.poll() is None:
        process.kill()
        process.wait()


def _summary(output, what):
    match = re.search(r"\[\s*(\d+) tests " + what + r"\s*\]", output)
    assert match, f"no '{what}' count in the JUnit launcher output:\n{output[-4000:]}"
    return int(match.group(1))


def _pruned_clustered_model(block=None):
    import keras

    import keras_dc
    from keras_dc import schedules

    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((24,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(5),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(3)
    x = rng.normal(size=(128, 24)).astype("float32")
    y = rng.integers(0, 5, 128)
    model.fit(
        x,
        y,
        epochs=2,
        verbose=0,
        callbacks=[
            keras_dc.MagnitudePruning(
                0.8, schedule=schedules.OneShot(), min_size=1, block=block, verbose=0
            )
        ],
    )
    model.fit(
        x,
        y,
        epochs=1,
        verbose=0,
        callbacks=[keras_dc.WeightClustering(bits=3, min_size=1, verbose=0)],
    )
    return model


@pytest.mark.parametrize("sparse", [False, True], ids=["dense-tflite", "sparse-tflite"])
def test_java_restores_a_converted_keras_model(sparse, java_classes, junit_run, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    import converters
    from converters import decoder as decoder_lib
    from converters import files

    # sparse: 1x4 block pruning and TFLite sparse tensors (convert(sparse=True)).
    model = _pruned_clustered_model(block="litert" if sparse else None)
    directory = str(tmp_path / "bundle")
    result = converters.convert(model, directory, sparse=sparse, verbose=0, picture=False)
    assert bool(result.sparse_tensors) == sparse
    skeleton, sidecar = files.bundle_paths(directory)
    with open(sidecar, "rb") as f:
        encodings = [s["encoding"] for s in decoder_lib.inspect(f.read())["segments"]]
    assert "CLUSTERED_SPARSE" in encodings or "CLUSTERED_DENSE" in encodings, encodings

    out = str(tmp_path / "java.tflite")
    main, _ = java_classes
    result = _run(
        ["java", "-cp", main, "dev.kerasdc.bundle.RestoreMain", skeleton, sidecar, out], 120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with open(out, "rb") as f:
        restored = f.read()
    assert restored == converters.restore(directory)

    interpreter = Interpreter(model_content=restored)
    interpreter.allocate_tensors()
    (inp,), (outp,) = interpreter.get_input_details(), interpreter.get_output_details()
    x = np.random.default_rng(11).normal(size=inp["shape"]).astype(np.float32)
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    lite = interpreter.get_tensor(outp["index"])
    keras_out = np.asarray(model(x, training=False))
    assert np.max(np.abs(lite - keras_out)) <= 1e-5


def test_junit_suite_passes(junit_run, request):
    process, log = junit_run
    try:
        returncode = process.wait(timeout=600)
    except subprocess.TimeoutExpired:
        pytest.fail("the JUnit suite ran for more than 10 minutes")
    with open(log) as f:
        output = f.read()
    found, failed, succeeded = (_summary(output, w) for w in ("found", "failed", "successful"))
    line = f"JUnit (android/core on the JVM): {found} tests found, {succeeded} successful, {failed} failed"
    print(line)
    request.config.stash[JUNIT_SUMMARY] = line  # shown in the terminal summary (conftest.py)
    request.node.user_properties.append((JUNIT_SUMMARY_PROPERTY, line))  # from an xdist worker
    assert found > 0, "the JUnit launcher found no tests:\n" + output[-4000:]
    assert failed == 0 and returncode == 0, "Java tests failed:\n" + output[-12000:]
    assert succeeded == found, output[-4000:]
