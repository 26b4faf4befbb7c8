"""Helpers shared by several test packages: model fixtures, Keras builders, site rows."""
