"""Per-packet status codes (docs/architecture.md: errors inside kernels are flags).

A packet whose status is not ``OK`` is frozen: kernels skip it and tallies
exclude it; the Result counts packets per status so nothing is dropped
silently.
"""
OK = 0
#: a coordinate, momentum or amplitude became NaN or infinite
NAN = 1
#: |chi| drifted from 1 by more than the norm tolerance (unitarity broken)
NORM_DRIFT = 2
#: the phase-space form omega was singular (D = 0): equations of motion undefined
SINGULAR = 3
#: a scattering proposal exceeded the null-collision majorant (event would be biased)
MAJORANT = 4
#: a user channel or callback reported an invalid state
CHANNEL = 5
#: the packet left the model's k window (continuum models)
OUT_OF_WINDOW = 6
#: manifold dynamics: more than 1e-6 of |chi|^2 outside the active manifold
LEAKAGE = 7

NAMES = {OK: "ok", NAN: "nan", NORM_DRIFT: "norm_drift", SINGULAR: "singular_omega",
         MAJORANT: "majorant_violated", CHANNEL: "channel_error", OUT_OF_WINDOW: "out_of_window",
         LEAKAGE: "manifold_leakage"}
