"""keras-dc converters: Keras model → mobile bundle (TFLite skeleton + Huffman-coded sidecar).

Example:
    >>> import converters
    >>> result = converters.convert(model, "out/")      # verified in LiteRT
    >>> model_bytes = converters.restore("out/")        # byte-identical flatbuffer
"""

from converters.bundle import BundleResult, convert, restore, verify
from converters.files import load_bundle
from converters.format import FormatError

__all__ = ["convert", "restore", "verify", "load_bundle", "BundleResult", "FormatError"]
