"""Tests of assignments.services.grading: the state machine and the reaper, on the real stack."""
