"""The named kernel interface (packets.scratch): one layout, names instead of positions, groups."""
import pathlib
import re

import numba
import numpy as np
import pytest

from packets import scratch as sc

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIBRARY = [p for d in ("packets", "scattering", "observables", "gpu") for p in (ROOT / d).rglob("*.py")]


def test_no_positional_index_into_the_kernel_tuples():
    """No ``S[14]``, ``P[0]`` or ``C[6]`` in the library: every entry is reached by its name."""
    bare = re.compile(r"\b[SPC]\[\d")
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in LIBRARY
            for i, line in enumerate(p.read_text().splitlines(), 1) if bare.search(line)]
    assert not hits, "positional indices into S/P/C:\n" + "\n".join(hits)


def test_names_are_positions_of_the_one_layout():
    assert len(set(sc.SCRATCH_NAMES)) == len(sc.SCRATCH_NAMES)
    for i, name in enumerate(sc.SCRATCH_NAMES):
        assert getattr(sc, name) == i
    for i, (name, *_rest) in enumerate(sc.CONTEXT_SLOTS):
        assert getattr(sc, name) == i
    for i, (name, _doc) in enumerate(sc.PARAMETER_SLOTS):
        assert getattr(sc, name) == i
    # every entry documented (meaning in the layout, listed in the architecture notes)
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for slots in sc.SCRATCH_GROUPS.values():
        for name, _shape, _dtype, meaning in slots:
            assert meaning and (f"`{name}`" in doc or name in ("G2", "G3")), name  # G1–G4 written as a range
    for name, *_rest in sc.CONTEXT_SLOTS:
        assert f"`{name}`" in doc, name
    for name, _doc in sc.PARAMETER_SLOTS:
        assert f"`{name}`" in doc, name


def test_layout_allocates_only_declared_groups():
    dim, nb = 2, 3
    full = sc.scratch_layout(dim, nb)
    assert all(shape is not None for _n, shape, _d in full)
    assert dict((n, s) for n, s, _d in full)["M"] == (4, nb, nb)
    plain = sc.scratch_layout(dim, nb, sc.scratch_groups())
    for name, shape, _dtype in plain:
        declared = sc.SCRATCH_GROUP_OF[name] in ("stepper", "bands", "work")
        assert (shape is not None) == declared, name
    with_events = sc.scratch_layout(dim, nb, sc.scratch_groups(adaptive=True, manifold=True, events=True))
    assert all(shape is not None for _n, shape, _d in with_events)


def test_kernel_reaching_an_undeclared_group_does_not_compile():
    """An entry of a group the variant does not declare is None: using it is a typing error, not garbage."""
    alloc = sc.make_allocator(sc.scratch_layout(2, 2, sc.scratch_groups()), "cpu")

    @numba.njit
    def uses_bands():
        S = alloc()
        w = S[sc.W]
        w[0] = 1.5
        return w[0], S[sc.EV_W] is None

    assert uses_bands() == (1.5, True)

    @numba.njit
    def uses_events():
        S = alloc()
        ew = S[sc.EV_W]
        ew[0] = 1.0
        return ew[0]

    with pytest.raises(numba.core.errors.TypingError):
        uses_events()


def test_variant_is_the_compiled_specialisation_not_the_values():
    """Equal Variant <=> same kernels: parameter values do not enter, fillers, fields and plug-ins do."""
    from packets import models
    from packets.field import Field
    from packets.spec import Spec
    from packets.variant import Variant

    def variant(model, field, dynamics="coherent", channels=(), dt=0.05, seed=1):
        spec = Spec(model=model, field=field, dynamics=dynamics, channels=(), observables=(), dt=dt,
                    integrator="rk4", tol=1e-9, backend="cpu", nbatch=8, shard=64, orbital_moment=True, seed=seed)
        return Variant.of(spec, (("obs", 4, (4,)),), channels)

    a = variant(models.MassiveDirac(mass=0.3), Field(E=(0.01, 0.0)))
    b = variant(models.MassiveDirac(mass=0.5, velocity=2.0), Field(E=(0.0, 0.2)), dt=0.02, seed=2)
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
    assert a != variant(models.MassiveDirac(mass=0.3), Field(E=(0.01, 0.0), B=0.1))  # B term compiled in
    assert a != variant(models.MassiveDirac(mass=0.3), Field(E=(0.01, 0.0)), dynamics="adiabatic")
    assert a != variant(models.BHZ(), Field(E=(0.01, 0.0)))
    with_channel = variant(models.MassiveDirac(mass=0.3), Field(E=(0.01, 0.0)), channels=(("kick", 3),))
    assert a != with_channel and with_channel.channel_offsets() == [0]
    assert "events" in with_channel.scratch_groups() and "events" not in a.scratch_groups()


def test_one_packet_state_schema():
    """The packet state is one schema: the ensemble, the Simulation, both drivers and checkpoints follow it."""
    import inspect
    import pickle

    from gpu import driver as gpu_driver
    from packets import Ensemble, Simulation, driver_cpu, models
    from packets import state as ps

    assert ps.NAMES == tuple(c.name for c in ps.COMPONENTS) and ps.ENSEMBLE == ps.NAMES[:7]
    assert Ensemble._ARRAYS == ps.ENSEMBLE
    assert gpu_driver.KERNEL_STATE == ps.NAMES
    # the CPU driver's advance takes the state arrays first, in the schema's order
    args = list(inspect.signature(driver_cpu.ShardedAdvance.__call__).parameters)[1:]
    assert tuple(a.lower() for a in args[:len(ps.NAMES)]) == ("x", "k", "chi", "band", "w", "status",
                                                                      "pid", "clock", "ev")
    m = models.MassiveDirac(mass=0.3)
    ens = Ensemble.fermi_sea(m, mu=0.5, temperature=0.05, n=40, seed=2)
    sim = Simulation(m, ens, nbatch=4, shard=16)
    s = sim.state
    assert isinstance(s, ps.PacketState) and s.n == 40 and s.nbytes == 40 * ps.PacketState.nbytes_per_packet(2, 2)
    for c in ps.COMPONENTS:
        a = getattr(sim, c.name)
        assert a is getattr(s, c.name) and a.dtype == c.dtype and a.shape == c.shape(40, 2, 2)
    assert np.all(np.isinf(s.clock)) and not np.any(s.ev)  # no channels: no events scheduled
    # slices are views (a task's payload), concatenation restores the whole, pickling keeps every bit
    part = s[8:24]
    assert np.shares_memory(part.chi, s.chi) and part.pid[0] == 8
    whole = ps.PacketState.concatenate([s[:8], part, s[24:]])
    again = pickle.loads(pickle.dumps(whole))
    for name in ps.NAMES:
        assert np.array_equal(getattr(again, name), getattr(s, name))
    # a component of the wrong dtype or shape is refused, naming it
    bad = s.as_dict()
    bad["status"] = bad["status"].astype(np.int64)
    with pytest.raises(ValueError, match="status"):
        ps.PacketState(2, 2, **bad)
    with pytest.raises(ValueError, match="chi"):
        ps.PacketState.from_arrays(dict(s.as_dict(), chi=s.chi[:, :1]), 2, 2)
    with pytest.raises(ValueError, match="pid"):
        ps.PacketState.from_arrays({n: s.as_dict()[n] for n in ps.ENSEMBLE if n != "pid"}, 2, 2)
