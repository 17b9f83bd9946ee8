"""Per-packet status codes (docs/architecture.md: errors inside kernels are flags).

A packet whose status is not ``OK`` is frozen: kernels skip it and tallies
exclude it; the Result counts packets per status so nothing is dropped
silently.

A status value carries two things: ``reason(code)`` (its low byte, one of the
codes below) and ``source(code)`` (``code // SOURCE_STRIDE``), what flagged
the packet: ``SOURCE_DYNAMICS`` (0: the equations of motion and the checks
at the end of every record interval), ``c + 1`` for event channel c (an
error it returned, or a non-finite state it left), or ``SOURCE_INITIAL``
(rejected in the initial state); up to 254 channels are told apart.  A plain
reason is thus a packet flagged by the dynamics.  The ``SOURCE_*`` constants
are not status codes (``packets.ensemble.STATUS`` lists the reasons only).
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

#: the source part of a status value: status = reason + SOURCE_STRIDE * source
SOURCE_STRIDE = 256
#: sources: the dynamics (0), channel c (c + 1), the initial state
SOURCE_DYNAMICS = 0
SOURCE_INITIAL = 255

NAMES = {OK: "ok", NAN: "nan", NORM_DRIFT: "norm_drift", SINGULAR: "singular_omega",
         MAJORANT: "majorant_violated", CHANNEL: "channel_error", OUT_OF_WINDOW: "out_of_window",
         LEAKAGE: "manifold_leakage"}


def reason(code):
    """The reason part of a status value (or array): one of the codes above."""
    return code % SOURCE_STRIDE


def source(code):
    """The source part of a status value (or array): SOURCE_DYNAMICS, channel index + 1, or SOURCE_INITIAL."""
    return code // SOURCE_STRIDE


class FlaggedPacketsWarning(RuntimeWarning):
    """Packets were flagged during a run (they are no longer tallied); the message says why and by what."""


class FlaggedPacketsError(RuntimeError):
    """``on_flag="raise"``: a record interval flagged packets; the run stopped after recording it."""
