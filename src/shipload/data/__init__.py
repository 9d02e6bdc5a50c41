"""Chip I/O, data sets, augmentation and the Lightning data module."""
