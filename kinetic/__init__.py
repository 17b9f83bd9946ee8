"""Deterministic kinetic-equation references for the Monte Carlo: linearised
and time-dependent Boltzmann solvers, the non-adiabatic steady state of seed
001, coherence-matrix radiative transport (seed 002), single-k master
equations, closed-form results, and the MC-vs-kinetic comparison tool.

Not yet implemented: this package is filled by the kinetic-references issue.
"""
