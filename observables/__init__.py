"""Tallies and estimators: current, density, band populations, pseudospin
density matrix, energy, conductivity tensors (Hall and nonlinear Hall) with
batch-means error bars, and result files.

Not yet implemented: this package is filled by the dynamics issue.
"""
