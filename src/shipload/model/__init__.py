"""Backbones (plain nn.Module) and the Lightning task."""
