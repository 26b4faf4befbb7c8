"""Writes: every change to courses, assignments, submissions and results goes through here.

Split by concern: `courses` (courses, enrollments, assignments and their rule sets),
`submissions` (uploads, quotas, late policy), `grading` (stage transitions, results, regrades).
"""
