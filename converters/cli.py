"""keras-dc: Deep Compression bundles from the command line.

Usage: keras-dc COMMAND [--flag=value ...]     (keras-dc COMMAND --help for one command)

Commands:
  convert  --model=M.keras --out=DIR    convert a Keras model into a bundle verified in LiteRT:
                                        DIR/NAME.skeleton.tflite + DIR/NAME.dcw (the 2 files
                                        a phone needs) and DIR/NAME.report.{json,txt,png}
           [--int8 --representative=X.npy]  full-integer int8 bundle (docs/int8.md)
  inspect  --bundle=DIR                 the sidecar's per-buffer table
  verify   --bundle=DIR [--model=M]     restore the bundle and run it in LiteRT; with --model,
                                        compare its outputs with the Keras model's; without,
                                        check only the bundle's integrity (checksums, hash,
                                        finite outputs)
  restore  --bundle=DIR --output=F      write the runnable .tflite (what the phone does)

--name=NAME picks one bundle when DIR holds several (every command; convert's default: model).

Exit codes: 0 success; 1 verification failed (the bundle's outputs differ from the model's);
2 bad usage or bad input (unknown command or flag, missing flag, missing, corrupt or
unwritable file, a model that does not convert). Errors are one line on stderr.
"""

import json
import os
import re
import sys
import tempfile
import textwrap

from absl import flags

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2

# The CLI's own flag registry: importing this module never clashes with the flags of
# an absl program that imports it (examples define --out too).
_FLAGS = flags.FlagValues()

_MODEL = flags.DEFINE_string("model", None, "Path to a .keras model.", flag_values=_FLAGS)
_OUT = flags.DEFINE_string(
    "out", None, "Output bundle directory (created if missing).", flag_values=_FLAGS
)
_BUNDLE = flags.DEFINE_string("bundle", None, "Bundle directory.", flag_values=_FLAGS)
_OUTPUT = flags.DEFINE_string(
    "output", None, "Path of the restored .tflite file.", flag_values=_FLAGS
)
_NAME = flags.DEFINE_string(
    "name",
    None,
    "File name stem of the bundle files; needed when the folder holds several bundles "
    "(convert's default: model).",
    flag_values=_FLAGS,
)
_FLOAT16 = flags.DEFINE_bool("float16", False, "Store the weights as float16.", flag_values=_FLAGS)
_SPARSE = flags.DEFINE_bool(
    "sparse",
    False,
    "Store weights with enough zeros as TFLite sparse tensors (Optimize.EXPERIMENTAL_SPARSITY); "
    "Dense kernels pruned with MagnitudePruning(block='litert') then run LiteRT's sparse kernel.",
    flag_values=_FLAGS,
)
_INT8 = flags.DEFINE_bool(
    "int8",
    False,
    "Full-integer int8 bundle (int8 weights and activations, for NPU/DSP delegates); needs "
    "--representative.",
    flag_values=_FLAGS,
)
_REPRESENTATIVE = flags.DEFINE_string(
    "representative",
    None,
    "With --int8: a .npy file of real inputs (samples first), or a .npz with one array per "
    "model input in input order; the first 100 samples calibrate the activations.",
    flag_values=_FLAGS,
)
_INT8_IO = flags.DEFINE_bool(
    "int8_io",
    False,
    "With --int8: int8 inputs and outputs too (default: float32 inputs and outputs).",
    flag_values=_FLAGS,
)
_LAYOUT = flags.DEFINE_enum(
    "layout",
    "offset",
    ["offset", "inline"],
    "Flatbuffer layout: weights behind the flatbuffer (offset), or at their usual places (inline, "
    "for runtimes that ignore Buffer.offset, e.g. TFLite Micro).",
    flag_values=_FLAGS,
)
_BATCH = flags.DEFINE_integer(
    "batch_size", 1, "Static batch size of the converted model.", flag_values=_FLAGS
)
_STRICT = flags.DEFINE_bool(
    "strict_delegate", False, "Fail when the GPU delegate check finds problems.", flag_values=_FLAGS
)
_COMPACT = flags.DEFINE_bool(
    "compact_skeleton",
    True,
    "Move the skeleton's compressible parts into zlib segments of the sidecar "
    "(--nocompact_skeleton keeps the whole flatbuffer head in the skeleton file).",
    flag_values=_FLAGS,
)
_PACKED = flags.DEFINE_bool(
    "packed",
    True,
    "Write the sidecar as one PACKED segment (format 1.4) when that makes the bundle smaller "
    "(--nopacked writes a format 1.0-1.3 sidecar, with the buffers' names).",
    flag_values=_FLAGS,
)
_SKELETON_DICT = flags.DEFINE_bool(
    "skeleton_dict",
    True,
    "Code the sidecar's flatbuffer ranges with zlib and the format's preset dictionary "
    "(ZLIB_DICT, format 1.5) where that is smaller (--noskeleton_dict writes the format 1.4 bytes).",
    flag_values=_FLAGS,
)
_MASKED = flags.DEFINE_bool(
    "masked",
    True,
    "Code weight buffers whose dead units empty whole rows or columns as MASKED (format 1.6) "
    "where that is smaller (--nomasked writes the format 1.5 bytes).",
    flag_values=_FLAGS,
)
_STRIP = flags.DEFINE_bool(
    "strip_names",
    True,
    "Blank the names of the flatbuffer's inner tensors, which no runtime reads "
    "(--nostrip_names keeps the converter's names).",
    flag_values=_FLAGS,
)
_STRIP_METADATA = flags.DEFINE_bool(
    "strip_metadata",
    True,
    "Drop the converter's description, informational metadata and empty quantization "
    "tables, which no runtime reads (--nostrip_metadata keeps them).",
    flag_values=_FLAGS,
)
_JSON = flags.DEFINE_bool("json", False, "Print JSON instead of a table.", flag_values=_FLAGS)
_TOLERANCE = flags.DEFINE_float(
    "tolerance",
    1e-5,
    "Largest |LiteRT - Keras| / (1 + |Keras|) accepted (1e-2 for float16 bundles).",
    flag_values=_FLAGS,
)
_SAMPLES = flags.DEFINE_integer(
    "num_samples", 8, "Random input batches compared in LiteRT and Keras.", flag_values=_FLAGS
)

# command: (summary, required flags, optional flags)
_COMMANDS = {
    "convert": (
        "Convert a Keras model into a bundle verified in LiteRT.",
        (_MODEL, _OUT),
        (
            _NAME,
            _FLOAT16,
            _SPARSE,
            _INT8,
            _REPRESENTATIVE,
            _INT8_IO,
            _LAYOUT,
            _BATCH,
            _STRICT,
            _SAMPLES,
            _COMPACT,
            _PACKED,
            _SKELETON_DICT,
            _STRIP,
            _STRIP_METADATA,
        ),
    ),
    "inspect": ("Print the sidecar's per-buffer table.", (_BUNDLE,), (_NAME, _JSON)),
    "verify": (
        "Restore the bundle and run it in LiteRT; with --model, compare with Keras "
        "(exit 1 when they differ); without, check only the bundle's integrity.",
        (_BUNDLE,),
        (_MODEL, _NAME, _TOLERANCE, _SAMPLES, _JSON),
    ),
    "restore": (
        "Write the runnable .tflite restored from the bundle.",
        (_BUNDLE, _OUTPUT),
        (_NAME,),
    ),
}
# Every flag of any command, once, for refusing those a command does not take.
_ALL_FLAGS = tuple({id(f): f for _, req, opt in _COMMANDS.values() for f in req + opt}.values())
_HELP_WORDS = ("--help", "-h", "-?", "--helpshort", "--helpfull", "help")

# Native log lines of TensorFlow and LiteRT that say nothing about the user's model.
_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|cudart_stub\.cc|cuda_platform\.cc|cuInit|"
    r"cpu_feature_guard\.cc|rebuild TensorFlow with the appropriate compiler flags|"
    r"Created TensorFlow Lite XNNPACK delegate|oneDNN custom operations|"
    r"Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered|"
    r"TF-TRT Warning|absl::InitializeLog"
)


class _CliError(Exception):
    """An error reported as one line, with its exit code."""

    def __init__(self, message, exit_code=EXIT_USAGE):
        super().__init__(message)
        self.exit_code = exit_code


def _flag_help(holder, required):
    flag = _FLAGS[holder.name]
    value = "" if flag.boolean else f"={flag.name.upper()}"
    default = "" if required or flag.default in (None, False) else f" (default: {flag.default})"
    mark = "required" if required else "optional"
    text = textwrap.fill(
        f"{mark}: {flag.help}{default}", 94, initial_indent="      ", subsequent_indent="      "
    )
    return f"  --{flag.name}{value}\n{text}"


def help_text(command=None):
    """The help of the whole CLI, or of one command."""
    if command is None:
        return __doc__.strip() + "\n"
    summary, required, optional = _COMMANDS[command]
    lines = [f"keras-dc {command}: {summary}", "", "Flags:"]
    lines += [_flag_help(f, True) for f in required] + [_flag_help(f, False) for f in optional]
    lines += ["", "Exit codes: 0 success, 1 verification failed, 2 bad usage or bad input."]
    return "\n".join(lines) + "\n"


def _parse(argv):
    """Parses ``argv`` (without the program name) into the command; flags into FLAGS."""
    words = [a for a in argv if not a.startswith("-")]
    if any(a.split("=")[0] in _HELP_WORDS for a in argv):
        command = words[0] if words and words[0] in _COMMANDS else None
        return "help", command
    _FLAGS.unparse_flags()  # every call starts from the defaults (tests call main twice)
    try:
        rest = _FLAGS(["keras-dc"] + list(argv))[1:]
    except flags.Error as e:
        raise _CliError(f"{e} (see keras-dc --help)") from None
    if len(rest) != 1 or rest[0] not in _COMMANDS:
        raise _CliError(
            f"expected one command out of {', '.join(_COMMANDS)}; got {rest or 'none'} "
            "(see keras-dc --help)"
        )
    command = rest[0]
    summary, required, optional = _COMMANDS[command]
    allowed = {f.name for f in required + optional}
    for flag in _ALL_FLAGS:
        if flag.present and flag.name not in allowed:
            raise _CliError(
                f"'{command}' does not take --{flag.name} (see keras-dc {command} --help)"
            )
    for flag in required:
        if flag.value is None:
            raise _CliError(f"'{command}' needs --{flag.name} (see keras-dc {command} --help)")
    return command, None


def _check_writable_dir(path, what):
    """Fails early when ``path`` cannot become a directory we write into."""
    probe = os.path.abspath(path)
    if os.path.exists(probe) and not os.path.isdir(probe):
        raise _CliError(f"{what} {path!r} exists and is not a directory")
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise _CliError(f"{what} {path!r}: {probe!r} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise _CliError(f"{what} {path!r}: no permission to write in {probe!r}")


def _check_writable_file(path, what):
    if os.path.isdir(path):
        raise _CliError(f"{what} {path!r} is a directory; give a file path")
    _check_writable_dir(os.path.dirname(os.path.abspath(path)), f"{what}'s folder")


def _print_json(value):
    print(json.dumps(value, indent=2, default=str))


def _representative_data():
    """The arrays of --representative (None without it); checked against --int8."""
    path = _REPRESENTATIVE.value
    if path is None:
        if _INT8.value:
            raise _CliError("--int8 needs --representative=FILE.npy|npz (real input samples)")
        return None
    if not _INT8.value:
        raise _CliError("--representative is used only with --int8")
    if not os.path.isfile(path) or not path.endswith((".npy", ".npz")):
        raise _CliError(f"--representative {path!r} is not a .npy or .npz file")
    import numpy as np

    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise _CliError(f"--representative {path!r}: {e}") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        arrays = [loaded[k] for k in loaded.files]
    return arrays[0] if len(arrays) == 1 else arrays


def _convert():
    import converters

    _check_writable_dir(_OUT.value, "--out")
    if not os.path.isfile(_MODEL.value):
        raise _CliError(f"--model {_MODEL.value!r} is not a file")
    representative = _representative_data()
    result = converters.convert(
        _MODEL.value,
        _OUT.value,
        name=_NAME.value or "model",
        float16=_FLOAT16.value,
        sparse=_SPARSE.value,
        int8=_INT8.value,
        representative_data=representative,
        int8_io=_INT8_IO.value,
        layout=_LAYOUT.value,
        batch_size=_BATCH.value,
        strict_delegate=_STRICT.value,
        num_samples=_SAMPLES.value,
        compact_skeleton=_COMPACT.value,
        packed=_PACKED.value,
        skeleton_dict=_SKELETON_DICT.value,
        masked=_MASKED.value,
        strip_names=_STRIP.value,
        strip_metadata=_STRIP_METADATA.value,
    )
    sizes = [(p, os.path.getsize(p)) for p in (result.skeleton_path, result.sidecar_path)]
    inputs = "representative" if _INT8.value else "random"
    print(
        f"max |LiteRT - Keras| = {result.max_abs_diff:.3g} on {_SAMPLES.value} {inputs} input batches"
    )
    print(
        f"ship these 2 files ({sum(s for _, s in sizes):,} bytes): "
        + ", ".join(f"{p} ({s:,} B)" for p, s in sizes)
    )
    return EXIT_OK


def _inspect():
    import converters
    from converters import decoder, report

    _, sidecar_bytes = converters.load_bundle(_BUNDLE.value, _NAME.value)
    info = decoder.inspect(sidecar_bytes)
    if _JSON.value:
        _print_json(info)
    else:
        print(report.format_inspect(info))
    return EXIT_OK


def _verify():
    import converters

    if _MODEL.value is not None and not os.path.isfile(_MODEL.value):
        raise _CliError(f"--model {_MODEL.value!r} is not a file")
    result = converters.verify(
        _BUNDLE.value, _MODEL.value, name=_NAME.value, num_samples=_SAMPLES.value, verbose=0
    )
    if _JSON.value:
        _print_json(result)
    else:
        print(f"restored {result['restored_bytes']:,} bytes, sha256 {result['sha256']}")
        for problem in result["delegate_problems"]:
            print(f"GPU delegate: {problem}")
    if result["max_scaled_diff"] is None:
        print(
            "verify: OK (bundle integrity only: checksums, hash, LiteRT runs it with finite "
            "outputs; pass --model to compare with the Keras model)"
        )
        return EXIT_OK
    scaled = result["max_scaled_diff"]
    if scaled > _TOLERANCE.value:
        raise _CliError(
            f"verify: FAILED: the bundle's outputs differ from the model's by up to {result['max_abs_diff']:.3g} "
            f"(|LiteRT - Keras| / (1 + |Keras|) = {scaled:.3g} > --tolerance={_TOLERANCE.value:g}); "
            "the model is not the one this bundle was converted from",
            EXIT_MISMATCH,
        )
    print(f"verify: OK (|LiteRT - Keras| / (1 + |Keras|) = {scaled:.3g} <= {_TOLERANCE.value:g})")
    return EXIT_OK


def _restore():
    import converters

    _check_writable_file(_OUTPUT.value, "--output")
    data = converters.restore(_BUNDLE.value, _OUTPUT.value, name=_NAME.value)
    print(f"wrote {_OUTPUT.value}: {len(data):,} bytes")
    return EXIT_OK


_RUN = {"convert": _convert, "inspect": _inspect, "verify": _verify, "restore": _restore}


class _QuietNativeStderr:
    """Holds back the native (C++) log lines of TensorFlow/LiteRT that are noise.

    File descriptor 2 goes to a temporary file while the command runs; on exit the
    lines that are not noise are written to the real stderr.
    """

    def __enter__(self):
        sys.stderr.flush()
        self._saved = os.dup(2)
        self._file = tempfile.TemporaryFile()
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        text = self._file.read().decode("utf-8", "replace")
        self._file.close()
        kept = [line for line in text.splitlines() if line.strip() and not _NOISE.search(line)]
        if kept:
            sys.stderr.write("\n".join(kept) + "\n")
        return False


def main(argv):
    """Runs one command; returns the exit code (documented in the module docstring)."""
    try:
        command, help_for = _parse(argv)
        if command == "help":
            sys.stdout.write(help_text(help_for))
            return EXIT_OK
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with _QuietNativeStderr():
            try:
                return _run_command(command)
            except _CliError as e:
                error = e
        raise error
    except _CliError as e:
        print(f"keras-dc: error: {e}", file=sys.stderr)
        return e.exit_code


def _one_line(error, limit=800):
    """The error's message as one line, cut at ``limit`` characters."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit] + " ... (message cut)"


def _run_command(command):
    from converters import FormatError

    try:
        return _RUN[command]()
    except FormatError as e:
        raise _CliError(f"bad bundle: {e}") from None
    except (ValueError, TypeError) as e:
        raise _CliError(_one_line(e)) from None
    except OSError as e:
        detail = f"{e.strerror}: {e.filename!r}" if e.strerror and e.filename else str(e)
        raise _CliError(detail) from None


def run():
    """Console-script entry point (``keras-dc``)."""
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    run()
