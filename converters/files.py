"""The files of a bundle directory: their names, reading them, writing them atomically.

A bundle directory holds ``NAME.skeleton.tflite`` and ``NAME.dcw`` (plus the
report files that `converters.convert` writes beside them).
"""

import os
import secrets

__all__ = [
    "SKELETON_SUFFIX",
    "SIDECAR_SUFFIX",
    "paths_for",
    "report_paths",
    "bundle_paths",
    "load_bundle",
    "write_atomic",
]

SKELETON_SUFFIX = ".skeleton.tflite"
SIDECAR_SUFFIX = ".dcw"


def paths_for(directory, name):
    """``(skeleton_path, sidecar_path)`` of bundle `name` in `directory` (may not exist yet)."""
    return (
        os.path.join(directory, name + SKELETON_SUFFIX),
        os.path.join(directory, name + SIDECAR_SUFFIX),
    )


def report_paths(directory, name):
    """``{"json": path, "txt": path, "png": path}``: the report files of bundle `name`.

    They carry the bundle's name, so two bundles in one directory keep their own reports.
    """
    return {ext: os.path.join(directory, f"{name}.report.{ext}") for ext in ("json", "txt", "png")}


def bundle_paths(directory, name=None):
    """Finds ``(skeleton_path, sidecar_path)`` in a bundle directory.

    Args:
        directory: The bundle directory.
        name: The file name stem. Defaults to `None`: the one stem that has a
            sidecar in `directory`.

    Raises:
        FileNotFoundError: The directory or one of the two files is missing.
        ValueError: `name` is None and the directory holds no sidecar or several.
    """
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"bundle directory {directory!r} does not exist.")
    if name is None:
        names = sorted(
            f[: -len(SIDECAR_SUFFIX)] for f in os.listdir(directory) if f.endswith(SIDECAR_SUFFIX)
        )
        if len(names) != 1:
            raise ValueError(
                f"{directory!r} holds {len(names)} sidecars (*{SIDECAR_SUFFIX}); "
                "expected exactly one, or pass name=."
            )
        name = names[0]
    paths = paths_for(directory, name)
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"bundle file {path!r} is missing.")
    return paths


def load_bundle(directory, name=None):
    """Reads ``(skeleton bytes, sidecar bytes)`` of a bundle directory (see `bundle_paths`)."""
    skeleton_path, sidecar_path = bundle_paths(directory, name)
    with open(skeleton_path, "rb") as f:
        skeleton = f.read()
    with open(sidecar_path, "rb") as f:
        sidecar = f.read()
    return skeleton, sidecar


def _new_temp_file(directory):
    """Creates a hidden, empty file in `directory`; returns ``(fd, path)``.

    The file is created with mode 0o666, from which the kernel removes the
    process umask: it ends up with the permissions `open(path, "wb")` would
    give, without reading (and so setting) the umask.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        path = os.path.join(directory, f".tmp-{secrets.token_hex(8)}")
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {directory!r}.")


def write_atomic(files):
    """Writes ``{path: bytes}``: all or nothing (temp files, then renames).

    Parent directories are created. Every file is first written and synced
    under a temporary name beside its target; only then are they renamed into
    place. A failure before the renames removes the temporary files and leaves
    the targets as they were.
    """
    temps = []
    try:
        for path, data in files.items():
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, exist_ok=True)
            fd, tmp = _new_temp_file(directory)
            temps.append((tmp, path))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for tmp, path in temps:
            os.replace(tmp, path)
        temps = []
    finally:
        for tmp, _ in temps:
            if os.path.exists(tmp):
                os.remove(tmp)
