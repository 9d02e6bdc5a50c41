"""Build hook: ship the default model inside the wheel, so an installed shipload finds it.

Everything else about the package is in pyproject.toml. ``pip install .`` copies
``models/shipload.onnx`` (with its int8 file, PyTorch weights and card) into
``shipload/_models/``; an editable install and a source checkout read ``models/`` directly.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODEL_FILES = ("shipload.onnx", "shipload.int8.onnx", "shipload.pt", "README.md")


class BuildPyWithModels(build_py):
    """``build_py`` that also copies the shipped model files into the package."""

    def run(self) -> None:
        """Build the package as usual, then add the model files."""
        super().run()
        src = Path(__file__).resolve().parent / "models"
        dst = Path(self.build_lib) / "shipload" / "_models"
        dst.mkdir(parents=True, exist_ok=True)
        for name in MODEL_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, dst / name)


setup(cmdclass={"build_py": BuildPyWithModels})
