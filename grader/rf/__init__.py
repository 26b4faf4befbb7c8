"""Receptive-field internals: layer geometry, field propagation, reports and hints.

The public entry points live in `grader.receptive_field`; this package holds the pieces so that
each module stays small.
"""
