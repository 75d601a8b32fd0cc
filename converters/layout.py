"""Lays out a TFLite flatbuffer so that its weight buffers can be cut out.

`lay_out` either rewrites the flatbuffer so that every constant buffer's data
follow the flatbuffer (`Buffer.offset`/`Buffer.size`, mode "offset") or keeps
the converter's inline layout (mode "inline"), and says where each weight
buffer's bytes lie in the result, as `flatbuffer.WeightBuffer`s.
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from converters import flatbuffer

__all__ = ["MODES", "lay_out"]

# "offset": weights after the flatbuffer; "inline": where the converter put them.
MODES = ("offset", "inline")


def _pack(model) -> bytes:
    import flatbuffers  # pylint: disable=g-import-not-at-top

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def _inline_ranges(data: bytes) -> dict[int, tuple[int, int]]:
    """buffer index -> (offset, size) of its data inside `data` (no copy)."""
    root = schema.Model.GetRootAs(data, 0)
    ranges = {}
    for index in range(root.BuffersLength()):
        buffer = root.Buffers(index)
        if buffer.Offset() > 1:
            if buffer.Size() > 0:
                ranges[index] = (int(buffer.Offset()), int(buffer.Size()))
            continue
        field = buffer._tab.Offset(4)  # Buffer.data, vtable slot 0
        if field:
            length = buffer._tab.VectorLen(field)
            if length:
                ranges[index] = (buffer._tab.Vector(field), length)
    return ranges


def lay_out(tflite_bytes, mode="offset", alignment=16, drop_informational=False):
    """Lays out the constant buffers and says where each one's bytes are.

    mode="offset" rewrites the flatbuffer (schema object API, deterministic)
    so that every non-empty buffer read by a tensor lives after the flatbuffer:
    `Buffer.offset` is the byte offset from the start of the returned bytes
    and `Buffer.size` its length. The data follow in buffer-index order, each
    at an `alignment`-aligned offset, zero-padded in between. Buffers not read
    by tensors (metadata) stay inline. The flatbuffer itself is then the
    "skeleton": `returned[:segments[0].offset]`.

    mode="inline" returns the bytes unchanged and reports where each buffer's
    data vector lies inside the flatbuffer (found through the schema's vtables;
    buffers already stored by offset are reported where they are). `alignment`
    is not applied (the converter aligns data to 4 bytes only).

    Either way the returned bytes load and run in
    `ai_edge_litert.interpreter.Interpreter(model_content=...)` exactly like the
    input.

    Args:
        tflite_bytes: A TFLite flatbuffer (bytes-like), inline or offset layout.
        mode: "offset" or "inline". Defaults to `"offset"`.
        alignment: Alignment of each buffer's offset in "offset" mode, a power
            of two. Defaults to `16`.
        drop_informational: In "offset" mode, also remove what no runtime reads
            (`flatbuffer.drop_informational`: the description, the converter's
            informational metadata, empty quantization tables). Ignored in
            "inline" mode, which keeps the converter's bytes. Defaults to `False`.

    Returns:
        `(bytes, segments)`: the laid-out file and one `flatbuffer.WeightBuffer` per
        non-empty constant buffer, sorted by offset, non-overlapping.

    Raises:
        TypeError: `tflite_bytes` is not bytes-like.
        ValueError: Unknown `mode`, bad `alignment`, or malformed flatbuffer.
    """
    if mode not in MODES:
        raise ValueError(f"`mode` must be 'offset' or 'inline', got {mode!r}.")
    if (
        isinstance(alignment, bool)
        or not isinstance(alignment, (int, np.integer))
        or alignment < 1
        or alignment & (alignment - 1)
    ):
        raise ValueError(f"`alignment` must be a power of two >= 1, got {alignment!r}.")
    data = flatbuffer.as_bytes(tflite_bytes)
    model = flatbuffer.unpack(data)
    descriptions = flatbuffer.describe_buffers(model)
    if not isinstance(drop_informational, bool):
        raise TypeError(f"`drop_informational` must be a bool, got {drop_informational!r}.")
    if mode == "inline":
        return data, _inline_segments(data, descriptions)
    if drop_informational:
        flatbuffer.drop_informational(model)
    return _move_behind(data, model, descriptions, alignment)


def _inline_segments(data: bytes, descriptions) -> list:
    """The weight buffers where they already lie in `data`, sorted by offset."""
    try:
        ranges = _inline_ranges(data)
    except Exception as exc:  # pylint: disable=broad-except
        raise ValueError(f"Malformed TFLite flatbuffer: {exc}") from exc
    segments = sorted(
        (
            flatbuffer.weight_buffer(i, *ranges[i], descriptions[i])
            for i in descriptions
            if i in ranges
        ),
        key=lambda s: s.offset,
    )
    for before, after in zip(segments, segments[1:]):
        if before.offset + before.size > after.offset:
            raise ValueError(
                f"Buffers {before.buffer_index} and {after.buffer_index} "
                "share bytes; cannot cut them out separately."
            )
    return segments


def _move_behind(data: bytes, model, descriptions, alignment: int) -> tuple[bytes, list]:
    """The offset layout: `model` repacked with its weight data after it."""
    # Read every payload first (the input may already use offsets).
    payloads = {}
    for index, buffer in enumerate(model.buffers or []):
        payload = flatbuffer.buffer_payload(buffer, data)
        if index in descriptions and payload is not None:
            payloads[index] = payload
        buffer.data = None if payload is None else np.frombuffer(payload, np.uint8)
        buffer.offset = buffer.size = 0
    for subgraph in model.subgraphs or []:  # keep large custom options inline
        for op in subgraph.operators or []:
            if op.largeCustomOptionsOffset > 1:
                start = op.largeCustomOptionsOffset
                op.customOptions = list(data[start : start + op.largeCustomOptionsSize])
                op.largeCustomOptionsOffset = op.largeCustomOptionsSize = 0

    moved = sorted(payloads)
    # Offsets and sizes are fixed-width uint64 fields, present whenever they
    # are non-zero, so a placeholder pass gives the final flatbuffer length.
    for index in moved:
        buffer = model.buffers[index]
        buffer.data, buffer.offset, buffer.size = None, 1 << 40, len(payloads[index])
    head_length = len(_pack(model))
    position = _align(head_length, alignment)
    offsets = {}
    for index in moved:
        offsets[index] = position
        model.buffers[index].offset = position
        position = _align(position + len(payloads[index]), alignment)
    head = _pack(model)
    if len(head) != head_length:
        raise RuntimeError(
            f"Flatbuffer length changed from {head_length} to {len(head)} bytes "
            "when offsets were filled in; please report this model."
        )
    out = bytearray(head)
    segments = []
    for index in moved:
        out.extend(b"\0" * (offsets[index] - len(out)))
        out.extend(payloads[index])
        segments.append(
            flatbuffer.weight_buffer(
                index, offsets[index], len(payloads[index]), descriptions[index]
            )
        )
    return bytes(out), segments
