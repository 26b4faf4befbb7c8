"""Tests of grader.layers: the layer records, their arguments, shapes and parameter counts."""
