"""Command-line client of the REST API (standard library only): submit files, follow their
grading with a progress bar, read the leaderboard, download grades.

    python -m assignments.client submit --url URL --token T --assignment SLUG model.py
"""
