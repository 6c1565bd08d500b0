"""SIGINT/SIGTERM for the command line and the driver, in two phases that share one record.

* Start-up (imports, config, model build, final writes): :func:`install_startup` makes a signal
  raise :class:`Interrupted`, which :func:`physampler.cli.main` turns into one line and exit
  128 + signal.
* Stepping: :func:`catch_signals` swaps in a :class:`StopFlag`; the driver stops at the next
  chunk end, writes a checkpoint and exits 128 + signal.

A raised :class:`Interrupted` can be lost: a handler runs between any two bytecodes, also inside
a third-party ``try: ... except: pass`` — mpmath does that around its optional ``import gmpy2``,
reached through torch's lazy sympy import while a job is being built, and a SIGINT landing there
once left a 10-million-step training run going (CI, 2026-12-03).  So the start-up handler also
*records* the signal before it raises; :func:`catch_signals` raises a recorded signal again before
the stepping starts, and ``main`` (:func:`raise_pending`) after a command that has no stepping loop.
"""
from __future__ import annotations

import signal

SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: signals delivered to the start-up handler and not yet honoured (a list: a module-level
#: mutable the handler appends to without a ``global`` rebinding in signal context)
_received: list[int] = []


class Interrupted(BaseException):
    """SIGINT/SIGTERM outside a job's stepping loop (BaseException, like KeyboardInterrupt: no
    ``except Exception`` on the way may swallow it; a bare ``except:`` still can, see above)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _startup(signum, frame):
    _received.append(signum)
    raise Interrupted(signum)


def install_startup() -> dict:
    """Make SIGINT/SIGTERM raise :class:`Interrupted` (and record it); returns the previous handlers."""
    _received.clear()
    return {s: signal.signal(s, _startup) for s in SIGNALS}


def restore(handlers: dict) -> None:
    for s, h in handlers.items():
        signal.signal(s, h)


def honoured() -> None:
    """The recorded signals have been acted on (the command is ending because of them)."""
    _received.clear()


def raise_pending() -> None:
    """Raise :class:`Interrupted` for the first recorded signal that nobody has honoured yet
    (its own raise was swallowed)."""
    if _received:
        raise Interrupted(_received[0])


class StopFlag:
    """The stepping loop's handler: remembers the signal; the driver reads ``signal``."""

    def __init__(self):
        self.signal = None

    def __call__(self, signum, frame):
        self.signal = signum


def catch_signals() -> tuple[StopFlag, dict]:
    """Install the stop flag for SIGINT/SIGTERM; returns (flag, previous handlers).  A signal
    that reached the start-up handler earlier and was swallowed on the way raises
    :class:`Interrupted` here, before anything steps."""
    raise_pending()
    flag = StopFlag()
    return flag, {s: signal.signal(s, flag) for s in SIGNALS}
