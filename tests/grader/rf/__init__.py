"""Tests of grader.rf and grader.receptive_field: receptive fields against Keras and papers."""
