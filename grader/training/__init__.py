"""Trusted training and evaluation of student models (runs inside sandboxes).

`grader.training.config` is pure Python and safe to import anywhere. `trainer`, `evaluation`,
`augment` and `safe_model` import TensorFlow and Keras inside their functions only, so importing
this package (or `grader`) never pays for, or depends on, TensorFlow.
"""
