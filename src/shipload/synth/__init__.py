"""Physically grounded tanker-chip renderer (see DESIGN.md, "What the sensor sees")."""

from shipload.synth.params import Scene, SynthConfig, recut, sample_scene
from shipload.synth.render import render
from shipload.synth.writer import write_dataset

__all__ = ["Scene", "SynthConfig", "recut", "render", "sample_scene", "write_dataset"]
