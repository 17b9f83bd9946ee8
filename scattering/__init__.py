"""Stochastic events: disorder correlation spectra, Born cross sections and the
event channels (elastic scattering with side jump, dephasing into the
hybridised bands, relaxation to equilibrium, user-defined channels).

Not yet implemented: this package is filled by the scattering issue.
"""
