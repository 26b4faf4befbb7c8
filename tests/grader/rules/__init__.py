"""Tests of grader.rules: the rule families, rule sets, hints and wording."""
