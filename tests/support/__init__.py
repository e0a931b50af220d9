"""Helpers shared by several test files (unit and integration); nothing here is a test."""
