"""Tests for commonlab.datasearch."""
