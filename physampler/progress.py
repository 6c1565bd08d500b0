"""Progress display shared by the driver and :class:`physampler.Runner`: a tqdm bar on a
terminal, plain log lines (every 5 % or 30 s) otherwise."""
from __future__ import annotations

import sys
import time

class Progress:
    """tqdm bar on a terminal; plain log lines (every 5 % or 30 s) otherwise."""

    def __init__(self, total: int, start: int, enabled: bool = True, stream=None):
        self.stream = stream or sys.stderr
        self.total, self.last_step, self.t0 = total, start, time.perf_counter()
        self.start = start
        self.last_log = self.t0
        self.bar = None
        self.enabled = enabled
        if enabled and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", file=self.stream, dynamic_ncols=True,
                            smoothing=0.1)

    def update(self, step: int, f_wl: float | None = None, cv=None, *, text: str = "", note: str = "") -> None:
        """Advance to ``step``; the status shows f_WL and the CV range, or ``text``, then ``note``."""
        if not self.enabled:
            return
        if cv is not None:
            lo = cv.min(dim=0).values.tolist()
            hi = cv.max(dim=0).values.tolist()
            text = f"f_WL {f_wl:.3g}, CV range " + ", ".join(f"{a:.4g}..{b:.4g}" for a, b in zip(lo, hi))
        if note:
            text = f"{text}, {note}" if text else note
        if self.bar is not None:
            self.bar.update(step - self.last_step)
            self.bar.set_postfix_str(text, refresh=False)
        else:
            now = time.perf_counter()
            if step >= self.total or now - self.last_log >= 30 or (step - self.last_step) * 20 >= self.total:
                rate = (step - self.start) / max(now - self.t0, 1e-9)
                eta = (self.total - step) / rate if rate > 0 else float("inf")
                print(f"step {step}/{self.total} ({100 * step / self.total:.0f} %), {rate:.0f} steps/s, "
                      f"ETA {eta:.0f} s, {text}", file=self.stream, flush=True)
                self.last_log = now
            else:
                return
        self.last_step = step

    def close(self):
        if self.bar is not None:
            self.bar.close()
