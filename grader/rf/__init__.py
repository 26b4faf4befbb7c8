"""Receptive-field internals: layer geometry, field propagation, footprints, reports, what-ifs.

The public entry points live in `grader.receptive_field`; this package holds the pieces so that
each module stays small: `geometry` (one record per layer class), `fields` (the course formula),
`footprint` (which pixels each unit sees, per position), `report` and `what_if` (the field one
small change would give, for the hints).
"""
