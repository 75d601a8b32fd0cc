"""keras-dc: Deep Compression (prune, cluster, Huffman-code) for Keras 3."""
from setuptools import find_packages, setup

setup(
    name="keras-dc",
    version="0.1.0",
    description=(
        "Deep Compression for Keras 3: pruning and weight-clustering callbacks "
        "and a Huffman-coded TFLite bundle converter."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_dc", "keras_dc.*", "converters", "converters.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        "numpy>=1.23",
        "absl-py>=1.0",
        "ai-edge-litert>=2.0",
    ],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6", "zstandard>=0.20", "matplotlib>=3.5"],
        "examples": ["matplotlib>=3.5", "zstandard>=0.20"],
        "tfmot": ["tensorflow-model-optimization>=0.8", "tf-keras>=2.16"],
    },
    entry_points={"console_scripts": ["keras-dc=converters.cli:run"]},
)
