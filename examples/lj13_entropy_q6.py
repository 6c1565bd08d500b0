"""S(U, Q6) of LJ13 with batched torch WLMD, and the free energy along Q6.

Two CVs — the potential energy U and the Steinhardt bond order Q6 — on one 2-D
landscape; 64 walkers share it (torch path, runs on CPU or CUDA).  At the end
the free energy F(Q6; T) = −T ln Σ_U exp(S(U, Q6) − U/T) is printed at three
temperatures around the melting peak (T ≈ 0.29) and S is saved as a PNG.

    python examples/lj13_entropy_q6.py [--steps 4000] [--walkers 64] [--device cpu]

This is a short demonstration (a converged S(U, Q6) needs ~100× more steps);
`physampler validate lj13` is the quantitative check of S(U).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

import physampler as ps
from physampler.analysis import free_energy_profile
from physampler.biases import LinearWall
from physampler.order_parameters import Steinhardt
from physampler.systems.lennard_jones import LJCluster
from physampler.validation_lj import start_configurations


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--walkers", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--png", default="lj13_entropy_q6.png")
    a = p.parse_args()
    lj = LJCluster(13, 2.0, device=a.device)
    cvs = [ps.PotentialEnergy(lj), Steinhardt(6)]
    land = ps.Landscape([ps.Axis("energy", -43.0, -20.0, bins=115, units="epsilon"),
                         ps.Axis("q6", 0.0, 0.5, bins=50)], sigma=1.0, out_of_range="wall", wall_strength=2.0,
                        device=a.device)
    wlmd = ps.WLMD(lj, cvs, land, ps.InverseTime(F=0.5, t_wl=max(1, a.steps // 8)), dt=0.005, c_f=0.005, kT=0.3,
                   biases=[LinearWall(0, -20.0, 10.0, "upper")])
    q0 = start_configurations(LJCluster(13, 2.0), a.walkers, seed=1).to(a.device)
    state = wlmd.init(q0, ps.WalkerRNG(1, a.walkers, device=a.device))
    state = ps.Runner(wlmd, state).run(a.steps)
    s = land.shifted().cpu().numpy()
    u, q6 = (c.numpy() for c in land.grid.centres())
    print(f"visited {np.isfinite(s).sum()} of {s.size} bins; Q6 range of the walkers now "
          f"{float(state.cv[:, 1].min()):.3f}-{float(state.cv[:, 1].max()):.3f}")
    for t in (0.25, 0.29, 0.33):
        f = free_energy_profile(u, q6, s, t)
        ok = np.isfinite(f)
        print(f"F(Q6; T={t}): minimum at Q6 = {q6[ok][np.argmin(f[ok])]:.3f}, "
              f"range {np.nanmax(f):.2f} eps over Q6 {q6[ok].min():.2f}-{q6[ok].max():.2f}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    m = ax.pcolormesh(u, q6, s.T, shading="nearest")
    ax.set_xlabel("U (epsilon)")
    ax.set_ylabel("Q6")
    fig.colorbar(m, label="S(U, Q6) - min")
    fig.tight_layout()
    fig.savefig(a.png, dpi=120)
    print(f"wrote {a.png}")


if __name__ == "__main__":
    main()
