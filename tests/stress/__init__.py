"""Stress tests: isolation under load, leaks, faults, bad input and a model of the contract.

CI runs bounded sizes; ``AIOCONTEXT_STRESS=full`` runs the full sizes (see ``_support``).
"""
