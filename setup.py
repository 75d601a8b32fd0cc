"""Build shim: the metadata and the version live in pyproject.toml (and keras_dc.__version__)."""

from setuptools import setup

setup()
