"""Benchmarks: ``./dev bench`` prints figures; nothing here is a test."""
