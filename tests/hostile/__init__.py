"""Hostile submissions: one test per attack a determined student could try (docs/security.md)."""
