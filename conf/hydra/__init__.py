"""Hydra config group, shipped as package data."""
