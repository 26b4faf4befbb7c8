"""Tests of assignments.services: uploads, courses, waiting for data."""
