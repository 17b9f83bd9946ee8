"""Compile hygiene: the per-packet physics kernels of a Simulation are compiled once each.

numba compiles a dispatcher again for every distinct argument type it is called with, and a
literal integer argument is a type of its own (``Literal[int](2)``), and a ``prange`` index is
typed int64 but lowered unsigned.  A kernel reached with such arguments is
compiled several times, which costs tens of seconds per variant and changes nothing else, so it
is invisible in every result: this check makes it visible.
"""
from numba.core.dispatcher import Dispatcher

#: the factories' kernels that carry the physics (each is large; none may be compiled twice)
PHYSICS_KERNELS = ("run_chunk", "lane_steps", "advance_packet", "cross", "integrate", "step", "stage", "rates",
                   "apply", "event_more", "event_none")


def reachable_dispatchers(root):
    """Every numba dispatcher reachable from ``root`` through closure cells and tuples."""
    seen, out, todo = set(), [], [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, Dispatcher):
            out.append(obj)
            fn = obj.py_func
        elif callable(obj) and hasattr(obj, "__closure__"):
            fn = obj
        elif isinstance(obj, (tuple, list)):
            todo.extend(obj)
            continue
        else:
            continue
        for cell in fn.__closure__ or ():
            try:
                todo.append(cell.cell_contents)
            except ValueError:  # an empty cell
                pass
    return out


def recompiled_physics_kernels(sim):
    """``{qualname: [signatures]}`` of the physics kernels of ``sim``'s driver compiled more than once."""
    root = sim._advance.run_chunk.py_func  # packets.driver_cpu.ShardedAdvance
    bad = {}
    for d in reachable_dispatchers(root):
        name = d.py_func.__qualname__.rsplit(".", 1)[-1]
        if name in PHYSICS_KERNELS and len(d.signatures) > 1:
            bad[d.py_func.__qualname__] = [str(s) for s in d.signatures]
    return bad
