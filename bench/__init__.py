"""Benchmarks: each module prints its numbers; ``make bench`` runs them all."""
