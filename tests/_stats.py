"""Shared estimators of the tests."""
import math

import numpy as np
import torch


def mean_square_position(engine, state, steps: int, burn_in: int = 500, blocks: int = 20):
    """⟨q²⟩ over all walkers and coordinates after ``burn_in`` steps of ``engine`` from ``state``,
    with the standard error of ``blocks`` block means: (mean, se)."""
    samples = []
    for t in range(steps):
        state, _ = engine.step(state)
        if t >= burn_in:
            samples.append(state.positions.pow(2).mean())
    means = np.array([b.mean() for b in np.array_split(torch.stack(samples).numpy(), blocks)])
    return means.mean(), means.std(ddof=1) / math.sqrt(len(means))
