"""The LiteRT-vs-Keras guard: a bundle whose LiteRT output differs from Keras is refused.

`converters.convert` runs the restored bundle in LiteRT and compares it with the
Keras model: every output within 1e-5 × (1 + |Keras output|) for float32 weights,
1e-2 × (1 + |Keras output|) for float16. Beyond that it raises and writes nothing;
``keras-dc convert`` then exits with code 2 and ``keras-dc verify`` (a bundle
against a model that it does not reproduce) with code 1.

The models here really diverge in LiteRT: float16 storage rounds a weight away
(catastrophic cancellation), or a layer computes something else when traced for
export than when Keras calls it eagerly.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import converters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLOAT32_TOLERANCE = 1e-5
FLOAT16_TOLERANCE = 1e-2


def _cancelling_model():
    """y = 2049·x − 2048·x = x in float32; 2049 is a float16 tie and rounds to 2048, so y = 0."""
    inputs = keras.Input((1,), name="x")
    h = keras.layers.Dense(2, use_bias=False)(inputs)
    outputs = keras.layers.Dense(1, use_bias=False)(h)
    model = keras.Model(inputs, outputs)
    model.layers[1].kernel.assign(np.array([[2049.0, -2048.0]], "float32"))
    model.layers[2].kernel.assign(np.array([[1.0], [1.0]], "float32"))
    return model


class _ExportOffset(keras.layers.Layer):
    """Identity when Keras calls it eagerly; ``x + offset·(1 + |x|)`` in the exported graph.

    The scaled difference |LiteRT − Keras| / (1 + |Keras|) is then ``offset``, up to rounding.
    """

    def __init__(self, offset, **kwargs):
        super().__init__(**kwargs)
        self.offset = offset

    def call(self, x):
        if tf.executing_eagerly():
            return x
        return x + self.offset * (1.0 + tf.abs(x))


def _offset_model(offset, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,), name="features")
    h = keras.layers.Dense(5)(inputs)
    return keras.Model(inputs, _ExportOffset(offset)(h))


def _dense_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,), name="features")
    return keras.Model(inputs, keras.layers.Dense(5)(inputs))


def _files(directory):
    """``{name: bytes}`` of a directory (empty when it does not exist)."""
    if not os.path.isdir(directory):
        return {}
    return {f: open(os.path.join(directory, f), "rb").read() for f in sorted(os.listdir(directory))}


def _cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "converters.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


@pytest.mark.parametrize(
    "float16, offset, accepted",
    [
        (False, 0.3 * FLOAT32_TOLERANCE, True),
        (False, 3 * FLOAT32_TOLERANCE, False),
        (True, 0.3 * FLOAT16_TOLERANCE, True),
        (True, 3 * FLOAT16_TOLERANCE, False),
    ],
    ids=["float32-within", "float32-beyond", "float16-within", "float16-beyond"],
)
def test_convert_guard_holds_the_documented_tolerance(float16, offset, accepted, tmp_path):
    model = _offset_model(offset)
    directory = str(tmp_path / "bundle")
    if accepted:
        result = converters.convert(model, directory, float16=float16, verbose=0, picture=False)
        # The divergence is really there, and really within the bound.
        tolerance = FLOAT16_TOLERANCE if float16 else FLOAT32_TOLERANCE
        assert 0 < result.max_abs_diff and 0 < result.max_scaled_diff <= tolerance
        assert sorted(_files(directory)) == [
            "model.dcw",
            "model.report.json",
            "model.report.txt",
            "model.skeleton.tflite",
        ]
    else:
        with pytest.raises(ValueError, match="verification failed") as info:
            converters.convert(model, directory, float16=float16, verbose=0, picture=False)
        tolerance = FLOAT16_TOLERANCE if float16 else FLOAT32_TOLERANCE
        assert f"> tolerance {tolerance:g}" in str(info.value)
        assert _files(directory) == {}


def test_convert_refuses_float16_weights_that_change_the_output(tmp_path):
    model = _cancelling_model()
    # In float32 the bundle is exact ...
    exact = converters.convert(model, str(tmp_path / "f32"), verbose=0, picture=False)
    assert exact.max_abs_diff <= FLOAT32_TOLERANCE
    # ... in float16 LiteRT returns 0 where Keras returns x: refused, and the bundle
    # directory keeps what it held before (no half bundle, no report).
    directory = str(tmp_path / "f16")
    converters.convert(_dense_model(), directory, verbose=0, picture=False)
    before = _files(directory)
    with pytest.raises(ValueError, match="verification failed"):
        converters.convert(model, directory, float16=True, verbose=0, picture=False)
    assert _files(directory) == before


def test_cli_convert_exits_2_when_litert_differs(tmp_path):
    path = str(tmp_path / "cancelling.keras")
    _cancelling_model().save(path)
    out = str(tmp_path / "bundle")
    proc = _cli("convert", f"--model={path}", f"--out={out}", "--float16")
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "verification failed" in proc.stderr and "Traceback" not in proc.stderr
    assert _files(out) == {}


def test_verify_fails_for_a_model_the_bundle_does_not_reproduce(tmp_path):
    bundled, other = _dense_model(seed=0), _dense_model(seed=1)  # same signature, other weights
    out = str(tmp_path / "bundle")
    converters.convert(bundled, out, verbose=0, picture=False)
    assert converters.verify(out, bundled, verbose=0)["max_scaled_diff"] <= FLOAT32_TOLERANCE
    assert converters.verify(out, other, verbose=0)["max_scaled_diff"] > 100 * FLOAT32_TOLERANCE
    right, wrong = str(tmp_path / "bundled.keras"), str(tmp_path / "other.keras")
    bundled.save(right)
    other.save(wrong)
    proc = _cli("verify", f"--bundle={out}", f"--model={right}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "verify: OK" in proc.stdout
    proc = _cli("verify", f"--bundle={out}", f"--model={wrong}")
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "verify: FAILED" in proc.stderr and "verify: OK" not in proc.stdout
