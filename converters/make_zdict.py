"""Builds `converters/skeleton.zdict`, the preset dictionary of ZLIB_DICT (informative).

docs/bundle-format.md 7.11: the dictionary is a fixed byte string, named by its SHA-256 and
size; this script is how it was made, once. Its bytes are frozen: a file that a reader
of format 1.5 restores must keep restoring, so running this script again (another
TensorFlow, another converter) MUST NOT replace the committed file. `--check` only
reports whether today's tools would make the same bytes.

    python -m converters.make_zdict --out=/tmp/skeleton.zdict     # writes a candidate
    python -m converters.make_zdict --check                        # compares, writes nothing

The material: the skeleton heads (R without its weight buffers, as the encoder's gaps,
tensor names stripped and informational metadata dropped as `convert` does by default)
of small synthetic Keras models covering Dense, Conv2D, DepthwiseConv2D, pooling,
Flatten, Reshape, folded BatchNormalization, Add, Concatenate, ReLU6 and Softmax, at
several sizes. None of them is a benchmark model (LeNet-300-100, LeNet-5, the
MobileNet-style net of `examples/budget_search.py`), so the benchmarks measure the
dictionary on models it was not made from.

The selection is greedy: the heads are cut into 8-byte k-mers, and into segments of
256 bytes (at every 32nd offset of every head, and its last 256 bytes). A segment's score
is the number of heads holding each of its k-mers that no chosen segment covers yet; the
best segment is taken and its k-mers marked covered, until the dictionary holds `SIZE`
bytes. zlib finds near matches cheaper than far ones, so the segments are written in
increasing score order: the most common material ends the dictionary.
"""

import hashlib
import os
import sys

import numpy as np

SIZE = 4096  # bytes of the dictionary (at most zlib's window, 32 KiB; small for a phone)
KMER = 8
SEGMENT = 256
STEP = 32
HERE = os.path.dirname(os.path.abspath(__file__))
DICTIONARY = os.path.join(HERE, "skeleton.zdict")


def _models():
    """[(name, keras.Model)]: the synthetic models whose heads make the dictionary."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)

    def mlp(name, sizes, activation="relu", softmax=True):
        x = inputs = keras.Input((sizes[0],))
        for n in sizes[1:-1]:
            x = layers.Dense(n, activation=activation)(x)
        x = layers.Dense(sizes[-1], activation="softmax" if softmax else None)(x)
        return name, keras.Model(inputs, x)

    def cnn():
        inputs = keras.Input((32, 32, 3))
        x = layers.Conv2D(8, 3, activation="relu")(inputs)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
        x = layers.AveragePooling2D(2)(x)
        x = layers.Flatten()(x)
        x = layers.Dense(24, activation="relu")(x)
        return "cnn", keras.Model(inputs, layers.Dense(7, activation="softmax")(x))

    def separable():
        inputs = keras.Input((24, 24, 2))
        x = layers.Conv2D(12, 3, strides=2, padding="same", use_bias=False)(inputs)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU(6.0)(x)
        for filters, stride in ((24, 1), (32, 2)):
            x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU(6.0)(x)
            x = layers.Conv2D(filters, 1, use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU(6.0)(x)
        x = layers.GlobalAveragePooling2D()(x)
        return "separable", keras.Model(inputs, layers.Dense(4, activation="softmax")(x))

    def residual():
        inputs = keras.Input((16, 16, 4))
        a = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
        b = layers.Conv2D(8, 3, padding="same")(a)
        b = layers.BatchNormalization()(b)
        x = layers.Activation("relu")(layers.Add()([a, b]))
        c = layers.Conv2D(4, 1, activation="relu")(inputs)
        x = layers.Concatenate()([x, c])
        x = layers.MaxPooling2D(4)(x)
        x = layers.Reshape((-1,))(x)
        return "residual", keras.Model(inputs, layers.Dense(3)(x))

    def reshaped():
        inputs = keras.Input((48,))
        x = layers.Dense(96, activation="relu")(inputs)
        x = layers.Reshape((4, 4, 6))(x)
        x = layers.Conv2D(10, 2, activation="relu6")(x)
        x = layers.Flatten()(x)
        return "reshaped", keras.Model(inputs, layers.Dense(6, activation="softmax")(x))

    return [
        mlp("mlp_small", [8, 4, 2], softmax=False),
        mlp("mlp_medium", [20, 64, 32, 10]),
        mlp("mlp_wide", [100, 200, 50, 3], activation="tanh"),
        cnn(),
        separable(),
        residual(),
        reshaped(),
    ]


def head(model):
    """The bytes of `model`'s restored file outside its weight buffers (the encoder's gaps),
    as `converters.convert` lays it out by default."""
    from converters import export, flatbuffer
    from converters import layout as layout_lib

    flat = export.to_tflite(model)
    restored, buffers = layout_lib.lay_out(flat, mode="offset", drop_informational=True)
    restored = flatbuffer.strip_names(restored)
    parts, cursor = [], 0
    for b in buffers:
        if b.size:
            parts.append(restored[cursor : b.offset])
            cursor = b.offset + b.size
    parts.append(restored[cursor:])
    return b"".join(parts)


def build(heads, size=SIZE):
    """The dictionary of at most `size` bytes chosen from `heads` (list of bytes), as the
    module docstring says."""
    kmer_ids, holders = {}, []  # holders: the number of heads holding each k-mer
    for h in heads:
        found = {
            kmer_ids.setdefault(h[i : i + KMER], len(kmer_ids)) for i in range(len(h) - KMER + 1)
        }
        holders += [0] * (len(kmer_ids) - len(holders))
        for i in found:
            holders[i] += 1
    holders = np.array(holders, np.int64)
    segments = []
    for h in heads:
        starts = list(range(0, len(h) - SEGMENT, STEP)) + [max(len(h) - SEGMENT, 0)]
        for start in starts:
            piece = h[start : start + SEGMENT]
            ids = {kmer_ids[piece[i : i + KMER]] for i in range(len(piece) - KMER + 1)}
            segments.append((piece, sorted(ids)))
    covered = np.zeros(len(kmer_ids), bool)
    chosen, total = [], 0
    while total < size and segments:
        scores = [int(holders[ids][~covered[ids]].sum()) for _, ids in segments]
        best = int(np.argmax(scores))
        if scores[best] == 0:
            break
        piece, ids = segments.pop(best)
        covered[ids] = True
        chosen.append((scores[best], piece))
        total += len(piece)
    chosen.sort(key=lambda c: c[0])  # increasing score; ties in the order chosen
    return b"".join(piece for _, piece in chosen)[-size:]


def main(argv):
    heads = [head(model) for _, model in _models()]
    data = build(heads)
    print(f"{len(heads)} heads, {sum(map(len, heads))} bytes -> dictionary of {len(data)} bytes")
    print(f"sha256 {hashlib.sha256(data).hexdigest()}")
    if "--check" in argv[1:]:
        with open(DICTIONARY, "rb") as f:
            same = f.read() == data
        print("same bytes as " + DICTIONARY if same else "differs from " + DICTIONARY)
        return 0 if same else 1
    out = next((a.split("=", 1)[1] for a in argv[1:] if a.startswith("--out=")), None)
    if out is None:
        print("pass --out=PATH (the committed dictionary is frozen) or --check")
        return 2
    with open(out, "wb") as f:
        f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
