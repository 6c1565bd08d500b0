"""Named splittings of the shared operators (docs/science.md §3).

A splitting is the sequence of operators one step applies, each with its fraction of dt:

    B(h): v ← v + a·h·dt                      (kick, with the current acceleration a)
    A(h): q ← q + v·h·dt                      (drift)
    O(h): v ← (1 − c)·v + √(c(2 − c)·kT/m)·η,  c = 1 − (1 − c_f)^h  (thermostat over h·dt)
    F:    constraints, CVs ξ(q), the method's deposit, the new acceleration a(q)

  ``ktd``     B O A F             the [P1] step; its kick uses the previous step's a,
                                  and its configurational sampling is biased by ≈ c_f/(2 − c_f)
  ``baoab``   B½ A½ O A½ F B½     Leimkuhler & Matthews, AMRX 2013 (doi:10.1093/amrx/abs010):
                                  exact configurational sampling of a harmonic well
  ``obabo``   O½ B½ A F B½ O½     Bussi & Parrinello, PRE 75, 056707 (2007), doi:10.1103/PhysRevE.75.056707
  ``verlet``  B½ A F B½           velocity Verlet, no thermostat (c_f must be 0)

Every splitting evaluates F once per step: one CV forward and one backward.
"""
from __future__ import annotations

#: operator sequences: (operator, fraction of dt); "F" has no fraction
SPLITTINGS: dict[str, tuple[tuple[str, float], ...]] = {
    "ktd": (("B", 1.0), ("O", 1.0), ("A", 1.0), ("F", 0.0)),
    "baoab": (("B", 0.5), ("A", 0.5), ("O", 1.0), ("A", 0.5), ("F", 0.0), ("B", 0.5)),
    "obabo": (("O", 0.5), ("B", 0.5), ("A", 1.0), ("F", 0.0), ("B", 0.5), ("O", 0.5)),
    "verlet": (("B", 0.5), ("A", 1.0), ("F", 0.0), ("B", 0.5)),
}


def thermostats(name: str) -> bool:
    """Whether splitting ``name`` contains a thermostat."""
    return any(op == "O" for op, _ in SPLITTINGS[name])


def partial_friction(c_f: float, fraction: float) -> float:
    """c over a fraction h of the step: 1 − (1 − c_f)^h (c_f itself at h = 1, exactly)."""
    return c_f if fraction == 1.0 else 1.0 - (1.0 - c_f) ** fraction
