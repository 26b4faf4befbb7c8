"""Framework-free grading core.

Reads Keras model configs, infers shapes, counts parameters, computes receptive fields and
evaluates declarative rules. Importing this package must never import Django or TensorFlow:
only `grader.training` (run inside a sandbox) imports TensorFlow, lazily.
"""
