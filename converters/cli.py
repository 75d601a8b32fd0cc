"""keras-dc command line: convert a Keras model to a bundle, inspect it, verify it.

Usage:
    keras-dc convert --model=model.keras --out=bundle/ [--float16] [--layout=inline]
    keras-dc inspect --bundle=bundle/ [--json]
    keras-dc verify  --bundle=bundle/ [--model=model.keras]
    keras-dc restore --bundle=bundle/ --output=model.tflite
"""

import json
import sys

from absl import app, flags

_COMMANDS = ("convert", "inspect", "verify", "restore")

_MODEL = flags.DEFINE_string("model", None, "Path to a .keras model (convert; optional for verify).")
_OUT = flags.DEFINE_string("out", None, "Output bundle directory (convert).")
_BUNDLE = flags.DEFINE_string("bundle", None, "Bundle directory (inspect, verify, restore).")
_OUTPUT = flags.DEFINE_string("output", None, "Where restore writes the .tflite.")
_NAME = flags.DEFINE_string("name", "model", "File name stem of the bundle files (convert).")
_FLOAT16 = flags.DEFINE_bool("float16", False, "Store weights as float16 (convert).")
_LAYOUT = flags.DEFINE_enum("layout", "offset", ["offset", "inline"],
                            "Flatbuffer layout: weights behind the flatbuffer, or inline (convert).")
_BATCH = flags.DEFINE_integer("batch_size", 1, "Static batch size of the converted model (convert).")
_STRICT = flags.DEFINE_bool("strict_delegate", False, "Fail when the delegate check finds problems.")
_JSON = flags.DEFINE_bool("json", False, "Print JSON instead of a table (inspect).")
_TOLERANCE = flags.DEFINE_float(
    "tolerance", 1e-5, "verify: largest |LiteRT - Keras| / (1 + |Keras|) accepted (use 1e-2 for float16).")
_SAMPLES = flags.DEFINE_integer("num_samples", 8, "Random input batches for verification.")


def _need(flag, command):
    if not flag.value:
        raise app.UsageError(f"'{command}' needs --{flag.name}.")
    return flag.value


def main(argv):
    if len(argv) != 2 or argv[1] not in _COMMANDS:
        raise app.UsageError(f"expected one command out of {', '.join(_COMMANDS)}; got {argv[1:]}.")
    command = argv[1]
    # Imported here so that --help stays fast.
    from converters import bundle, decoder, files, report

    try:
        if command == "convert":
            result = bundle.convert(
                _need(_MODEL, command), _need(_OUT, command), name=_NAME.value,
                float16=_FLOAT16.value, layout=_LAYOUT.value, batch_size=_BATCH.value,
                strict_delegate=_STRICT.value, num_samples=_SAMPLES.value)
            print(f"wrote {result.skeleton_path} and {result.sidecar_path}: "
                  f"{result.bundle_bytes} bytes, max |LiteRT - Keras| = {result.max_abs_diff:.3g}")
        elif command == "inspect":
            _, sidecar_bytes = files.load_bundle(_need(_BUNDLE, command))
            info = decoder.inspect(sidecar_bytes)
            print(json.dumps(info, indent=2, default=str) if _JSON.value else report.format_inspect(info))
        elif command == "verify":
            result = bundle.verify(_need(_BUNDLE, command), _MODEL.value, num_samples=_SAMPLES.value,
                                   verbose=0)
            print(json.dumps(result, indent=2))
            if result["max_scaled_diff"] is not None and result["max_scaled_diff"] > _TOLERANCE.value:
                print(f"verify: FAILED, max |LiteRT - Keras| / (1 + |Keras|) = "
                      f"{result['max_scaled_diff']:.3g} > {_TOLERANCE.value:g}", file=sys.stderr)
                return 1
            print("verify: OK")
        elif command == "restore":
            data = bundle.restore(_need(_BUNDLE, command), _need(_OUTPUT, command))
            print(f"wrote {_OUTPUT.value}: {len(data)} bytes")
    except decoder.FormatError as e:
        print(f"keras-dc {command}: bad bundle: {e}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"keras-dc {command}: {e}", file=sys.stderr)
        return 2
    return 0


def run():
    """Console-script entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
