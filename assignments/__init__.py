"""The Django app: courses, assignments, submissions, results, leaderboard, pages and REST API."""
