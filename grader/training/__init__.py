"""Trusted training and evaluation of student models (runs inside sandboxes).

`grader.training.config`, `backend`, `seeds`, `augment` and `pipeline` are pure Python and
NumPy, safe to import anywhere. `trainer`, `evaluation`, `accelerator` and `safe_model` import
Keras inside their functions only (and TensorFlow only on its backend: `backend` selects
TensorFlow, the default, or JAX), so importing this package (or `grader`) never pays for, or
depends on, a framework.
"""
