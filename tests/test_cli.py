"""The `keras-dc` command line: help, one-line errors with documented exit codes, --name."""

import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from converters import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _run(*args, console_script=False):
    """Runs the CLI in a fresh process, as a user would."""
    if console_script:
        script = os.path.join(os.path.dirname(sys.executable), "keras-dc")
        assert os.path.exists(script), "the keras-dc console script is not installed next to python"
        command = [script, *args]
    else:
        command = [sys.executable, "-m", "converters.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=600)


def _model(path, inputs=8, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((inputs,), batch_size=1),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(3),
        ]
    )
    model.save(path)
    return path


def _one_error_line(stderr):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("keras-dc: error: ") and "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("console_script", [False, True])
def test_help_lists_every_command_and_exits_0(console_script):
    proc = _run("--help", console_script=console_script)
    assert proc.returncode == 0, proc.stderr
    for command in ("convert", "inspect", "verify", "restore"):
        assert f"\n  {command} " in proc.stdout
    assert "Exit codes" in proc.stdout and "helpfull" not in proc.stdout


@pytest.mark.parametrize("command", ["convert", "inspect", "verify", "restore"])
def test_command_help_lists_its_own_flags(command, capsys):
    assert cli.main([command, "--help"]) == 0
    out = capsys.readouterr().out
    summary, required, optional = cli._COMMANDS[command]
    for flag in required + optional:
        assert f"--{flag.name}" in out
    assert "--name" in out  # every command takes --name
    other = {
        "convert": "--bundle",
        "inspect": "--model",
        "verify": "--out",
        "restore": "--float16",
    }[command]
    assert other not in out


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "expected one command"),
        (["frobnicate"], "expected one command"),
        (["convert", "--model=m.keras"], "'convert' needs --out"),
        (["inspect"], "'inspect' needs --bundle"),
        (["restore", "--bundle=b"], "'restore' needs --output"),
        (["inspect", "--bundle=b", "--out=x"], "'inspect' does not take --out"),
        (["inspect", "--bundle=b", "--nostrip_names"], "'inspect' does not take --strip_names"),
        (["convert", "--frobnicate=1"], "Unknown command line flag 'frobnicate'"),
        (["verify", "--bundle=/nonexistent/dir"], "does not exist"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(argv, message, capsys):
    assert cli.main(argv) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert message in _one_error_line(captured.err)
    assert captured.out == ""


def test_bad_output_locations_fail_before_converting(tmp_path, capsys):
    model = _model(str(tmp_path / "m.keras"))
    a_file = tmp_path / "afile"
    a_file.write_bytes(b"x")
    # `convert` checks --out first: a conversion would take seconds and print progress.
    for out, message in (
        (str(a_file), "exists and is not a directory"),
        (str(a_file / "sub"), "is a file, not a directory"),
    ):
        assert cli.main(["convert", f"--model={model}", f"--out={out}"]) == cli.EXIT_USAGE
        captured = capsys.readouterr()
        assert message in _one_error_line(captured.err)
        assert "converting" not in captured.out
    assert a_file.read_bytes() == b"x"
    assert (
        cli.main(["convert", f"--model={tmp_path / 'missing.keras'}", f"--out={tmp_path / 'b'}"])
        == 2
    )
    assert "is not a file" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "b").exists()


def test_two_bundles_in_one_folder_with_name_on_every_command(tmp_path):
    model_a = _model(str(tmp_path / "a.keras"), seed=1)
    model_b = _model(str(tmp_path / "b.keras"), seed=2)
    out = str(tmp_path / "bundles")
    for model, name in ((model_a, "a"), (model_b, "b")):
        proc = _run("convert", f"--model={model}", f"--out={out}", f"--name={name}")
        assert proc.returncode == 0, proc.stderr
        assert "ship these 2 files" in proc.stdout
        assert os.path.join(out, f"{name}.dcw") in proc.stdout
    # Each bundle keeps its own reports.
    for name in ("a", "b"):
        for ext in ("json", "txt", "png"):
            assert os.path.isfile(os.path.join(out, f"{name}.report.{ext}"))
    # Noise of the TensorFlow/LiteRT native logs is not shown.
    assert "cuInit" not in proc.stderr and "XNNPACK" not in proc.stderr
    # Without --name the folder is ambiguous: one line, exit 2.
    proc = _run("inspect", f"--bundle={out}")
    assert proc.returncode == 2 and "holds 2 sidecars" in _one_error_line(proc.stderr)
    proc = _run("inspect", f"--bundle={out}", "--name=b")
    assert proc.returncode == 0, proc.stderr
    proc = _run("verify", f"--bundle={out}", "--name=a", f"--model={model_a}")
    assert proc.returncode == 0 and "verify: OK" in proc.stdout, proc.stderr
    # The other model of the same shape is not the one converted: exit 1, said so.
    proc = _run("verify", f"--bundle={out}", "--name=a", f"--model={model_b}")
    assert proc.returncode == cli.EXIT_MISMATCH
    assert "not the one this bundle was converted from" in _one_error_line(proc.stderr)
    # Integrity only, said so.
    proc = _run("verify", f"--bundle={out}", "--name=b")
    assert proc.returncode == 0 and "integrity only" in proc.stdout
    restored = str(tmp_path / "b.tflite")
    proc = _run("restore", f"--bundle={out}", "--name=b", f"--output={restored}")
    assert proc.returncode == 0, proc.stderr
    import converters

    assert open(restored, "rb").read() == converters.restore(out, name="b")
    assert open(restored, "rb").read() != converters.restore(out, name="a")


def test_verify_with_a_model_of_another_input_shape_names_the_difference(tmp_path):
    out = str(tmp_path / "bundle")
    proc = _run("convert", f"--model={_model(str(tmp_path / 'a.keras'))}", f"--out={out}")
    assert proc.returncode == 0, proc.stderr
    proc = _run(
        "verify", f"--bundle={out}", f"--model={_model(str(tmp_path / 'c.keras'), inputs=9)}"
    )
    assert proc.returncode == cli.EXIT_USAGE
    line = _one_error_line(proc.stderr)
    assert "(1, 8)" in line and "(1, 9)" in line and len(line) < 400
    assert "\x1b[" not in proc.stderr  # no terminal escapes


def test_os_errors_are_one_line(tmp_path):
    out = tmp_path / "bundle"
    proc = _run("convert", f"--model={_model(str(tmp_path / 'a.keras'))}", f"--out={out}")
    assert proc.returncode == 0, proc.stderr
    shutil.copy(out / "model.dcw", tmp_path / "copy.dcw")
    os.chmod(out / "model.dcw", 0)
    try:
        if os.access(out / "model.dcw", os.R_OK):  # root reads anything: use a directory instead
            os.chmod(out / "model.dcw", 0o644)
            os.remove(out / "model.dcw")
            os.mkdir(out / "model.dcw")
        proc = _run("restore", f"--bundle={out}", f"--output={tmp_path / 'x.tflite'}")
        assert proc.returncode == 2
        _one_error_line(proc.stderr)
    finally:
        if (out / "model.dcw").is_file():
            os.chmod(out / "model.dcw", 0o644)
    assert not (tmp_path / "x.tflite").exists()
    assert np.frombuffer((tmp_path / "copy.dcw").read_bytes(), np.uint8).size > 0


@pytest.mark.parametrize(
    "option, flag, expected",
    [
        ("compact_skeleton", [], True),
        ("compact_skeleton", ["--nocompact_skeleton"], False),
        ("packed", [], True),
        ("packed", ["--nopacked"], False),
        ("skeleton_dict", [], True),
        ("skeleton_dict", ["--noskeleton_dict"], False),
        ("strip_metadata", [], True),
        ("strip_metadata", ["--nostrip_metadata"], False),
    ],
)
def test_convert_passes_encoder_options(option, flag, expected, tmp_path, monkeypatch):
    import converters

    model = tmp_path / "m.keras"
    model.write_bytes(b"not read: convert is replaced")
    seen = {}

    def fake_convert(model_or_path, directory, **kwargs):
        seen.update(kwargs)
        raise ValueError("stop after the arguments")

    monkeypatch.setattr(converters, "convert", fake_convert)
    argv = ["convert", f"--model={model}", f"--out={tmp_path / 'b'}"] + flag
    assert cli.main(argv) != 0
    assert seen[option] is expected
