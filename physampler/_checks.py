"""Eager argument checks shared by every public constructor.

Every check raises ``ValueError`` whose message starts with the argument name and
states the allowed values, so that configuration front-ends can turn it into the
one-line ``config error: <field>: ...`` users see.
"""
from __future__ import annotations

import math
from typing import Iterable


def finite(name: str, value) -> float:
    """Return ``value`` as a float, rejecting NaN, inf and non-numbers."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a finite real number (got {value!r})") from None
    if not math.isfinite(x):
        raise ValueError(f"{name}: must be a finite real number (got {value!r})")
    return x


def positive(name: str, value) -> float:
    x = finite(name, value)
    if x <= 0:
        raise ValueError(f"{name}: must be > 0 (got {value!r})")
    return x


def non_negative(name: str, value) -> float:
    x = finite(name, value)
    if x < 0:
        raise ValueError(f"{name}: must be >= 0 (got {value!r})")
    return x


def in_interval(name: str, value, lo: float, hi: float, *, lo_open=False, hi_open=False) -> float:
    x = finite(name, value)
    bad_lo = x <= lo if lo_open else x < lo
    bad_hi = x >= hi if hi_open else x > hi
    if bad_lo or bad_hi:
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        raise ValueError(f"{name}: must lie in {lb}{lo}, {hi}{rb} (got {value!r})")
    return x


def positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            if float(value) != int(value):
                raise ValueError
            value = int(value)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"{name}: must be a positive integer (got {value!r})") from None
    if value <= 0:
        raise ValueError(f"{name}: must be a positive integer (got {value!r})")
    return int(value)


def non_negative_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: must be an integer >= 0 (got {value!r})")
    return int(value)


def choice(name: str, value, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name}: must be one of {', '.join(map(repr, allowed))} (got {value!r})")
    return value


def ordered(lower_name: str, lower, upper_name: str, upper) -> tuple[float, float]:
    lo = finite(lower_name, lower)
    hi = finite(upper_name, upper)
    if not lo < hi:
        raise ValueError(f"{lower_name}: must be < {upper_name} (got {lower_name}={lower!r}, {upper_name}={upper!r})")
    return lo, hi


def named_items(name: str, items, cls, what: str) -> list:
    """``items`` (one ``cls`` or a sequence of them) as a non-empty list with unique ``.name``s."""
    items = [items] if isinstance(items, cls) else list(items)
    if not items or not all(isinstance(x, cls) for x in items):
        raise ValueError(f"{name}: must be a non-empty list of {what} (got {items!r})")
    names = [x.name for x in items]
    if len(set(names)) != len(names):
        raise ValueError(f"{name}: names must be unique (got {names})")
    return items


def same(where: str, got, want) -> None:
    """A saved state's ``got`` must equal this object's ``want``."""
    if got != want:
        raise ValueError(f"{where}: the saved {got!r} differs from this object's {want!r}")


def is_prime(n: int) -> bool:
    """Deterministic Miller–Rabin for n < 3.3·10²⁴ (the first 13 prime bases; Sorenson &
    Webster, Math. Comp. 86, 985 (2017), doi:10.1090/mcom/3134), a strong probable-prime test
    beyond: O(log³ n), where trial division would take minutes for n ≈ 2⁶¹."""
    if n < 2:
        return False
    bases = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)
    for b in bases:
        if n % b == 0:
            return n == b
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for a in bases:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True
