"""Tests for commonlab.record."""
