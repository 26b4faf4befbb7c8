"""Tests of grader.grading: the plan, the static check and the verdict without a database."""
