"""WanD without a box and without weight decay (issue 18): traces of what drives the norm and
the accuracy, and a settings search judged on seed statistics.

    python benchmarks/wand_nobox.py trace  [--setting NAME] [--seed 0] [--steps 1000] [--every 10]
    python benchmarks/wand_nobox.py search [--settings a,b,…] [--seeds 0-15] [--cap 1800] [--workers 2]
    python benchmarks/wand_nobox.py search --system task=x2+y --adamw-lr 0.005   (other tasks / the MLP)
    python benchmarks/wand_nobox.py digits [--seeds 0-15] [--steps 1500]           (the CNN on 8×8 digits)
    python benchmarks/wand_nobox.py list

The task is the CPU one of examples/train (x+y mod 23, 70 % train, d_model 32, P = 14 048);
every setting starts from ``examples/train/wand_add_p23_d32.toml`` with ``constraint = "none"``
and changes what its entry in :data:`SETTINGS` names.  One thread per run (a run is a
sequential chain; two runs share the two cores).

``trace`` prints, every ``--every`` steps: ln L_train, the accuracies, |θ|, the displacement
|θ − θ0| beside its thermal prediction, the kinetic temperature T_kin = |v|²/P, f_WL, the share
of the squared motion of the interval's first step that lies along the loss gradient (× P, so
that isotropic motion reads 1), and the change of ln L that an
isotropic thermal displacement alone would cause, and over the interval the energy per parameter that
the deposits put in (kT times the rise of the landscape's spline Φ under the walker), the
energy the wall β(ξ − ξ0)² releases as the walker descends it (negative when it climbs), and the
heat the thermostat takes out (λ(2 − λ)(T_kin − kT)/2 per step).  The thermal prediction (docs/science.md §9,
"The thermal drift of the norm"): with the ``ktd`` step, velocity autocorrelation
⟨v_n v_{n+k}⟩ = T (1 − λ)^k, so a free coordinate's displacement after t steps has variance
dt² T [t + 2 Σ_{k=1}^{t−1} (t − k)(1 − λ)^k] ≈ dt² T t (2 − λ)/λ, and |θ − θ0|² ≈ P times
that.  "thermal(kT)" is the exact sum at T = kT; "thermal(T_kin)" the same at the mean of the
measured T_kin over the steps so far.

``search`` runs each setting over the seeds, each run stopped at its first passage of test
accuracy 0.95 (t_gen) or at ``--cap`` steps (never: ∞ in the medians), and prints, per
setting, median t_gen, median delay t_gen − t_fit, the runs that never generalise, and the
median norm at the end, beside AdamW (lr 3e-3, weight decay 1, the [P1] baseline of
examples/train) over the same seeds in the same run.  The issue's bounds are median t_gen
≤ 1.5× AdamW's and median delay ≤ 0.25× AdamW's.  ``--json FILE`` appends every run.
``--system key=value,…`` changes the ``[system]`` of every setting, AdamW's included (e.g.
``task=x2+y`` or ``model=mlp``); ``--adamw-lr`` AdamW's learning rate (its x2+y example: 0.005).

``digits`` compares WanD with AdamW (lr 1e-2, weight decay 1e-2) on the 666-parameter CNN of
:func:`physampler.models.factories.digits_cnn` (240 training images, 300 test), full batch,
float64: per seed the first step with test accuracy ≥ 0.9 and the best test accuracy, with and
without the factory's box c = 3, and with F and β scaled to P (× 666/14 048).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WAND = ROOT / "examples" / "train" / "wand_add_p23_d32.toml"
ADAMW = ROOT / "examples" / "train" / "adamw_add_p23_d32.toml"

#: name → (description, overrides).  Overrides: {"system"|"optimizer": {key: value}} on the
#: example config without its box; "schedule": a ThreeStage's arguments instead of InverseTime.
SETTINGS: dict[str, tuple[str, dict]] = {
    "adamw": ("AdamW lr 3e-3, wd 1 (the reference)", {}),
    "box": ("the example: box c = 1.5, dt 1e-3, λ 0.03, kT 1, F 3 000, t_WL 500, σ 10, β 1e4 at −5",
            {"system": {"constraint": "box"}}),
    "nobox": ("the example's settings without the box", {}),
    "kT0.3": ("kT 0.3", {"optimizer": {"kT": 0.3}}),
    "kT0.1": ("kT 0.1", {"optimizer": {"kT": 0.1}}),
    "kT0.01": ("kT 0.01", {"optimizer": {"kT": 0.01}}),
    "lam0.3": ("friction λ 0.3", {"optimizer": {"friction": 0.3}}),
    "lam0.003": ("friction λ 0.003", {"optimizer": {"friction": 0.003}}),
    "dt3e-4": ("dt 3e-4", {"optimizer": {"lr": 3e-4}}),
    "dt3e-3": ("dt 3e-3", {"optimizer": {"lr": 3e-3}}),
    "F300": ("F and β / 10 (F 300, β 1e3): per parameter 0.021 and 0.071",
             {"optimizer": {"F": 300.0, "wall_strength": 1e3}}),
    "F30k": ("F and β × 10 (F 30 000, β 1e5)", {"optimizer": {"F": 3e4, "wall_strength": 1e5}}),
    "sigma1": ("σ 1 bin", {"optimizer": {"sigma": 1.0}}),
    "sigma40": ("σ 40 bins", {"optimizer": {"sigma": 40.0}}),
    "tWL2000": ("t_WL 2 000", {"optimizer": {"t_wl": 2000.0}}),
    "tWL100": ("t_WL 100", {"optimizer": {"t_wl": 100.0}}),
    "nowall": ("no wall at ξ0 (grid-edge walls only)", {"optimizer": {"wall_at": 2.0}}),
    "lam0.5": ("friction λ 0.5", {"optimizer": {"friction": 0.5}}),
    "lam0.9": ("friction λ 0.9 (nearly overdamped)", {"optimizer": {"friction": 0.9}}),
    "lam0.3_dt2e-3": ("λ 0.3, dt 2e-3", {"optimizer": {"friction": 0.3, "lr": 2e-3}}),
    "lam0.3_dt5e-4": ("λ 0.3, dt 5e-4", {"optimizer": {"friction": 0.3, "lr": 5e-4}}),
    "lam0.3_F300": ("λ 0.3, F 300, β 1e3", {"optimizer": {"friction": 0.3, "F": 300.0, "wall_strength": 1e3}}),
    "lam0.3_beta1e3": ("λ 0.3, β 1e3", {"optimizer": {"friction": 0.3, "wall_strength": 1e3}}),
    "lam0.3_kT0.3": ("λ 0.3, kT 0.3", {"optimizer": {"friction": 0.3, "kT": 0.3}}),
    "lam0.3_sigma25": ("λ 0.3, σ 25 bins", {"optimizer": {"friction": 0.3, "sigma": 25.0}}),
    "lam0.3_tWL250": ("λ 0.3, t_WL 250", {"optimizer": {"friction": 0.3, "t_wl": 250.0}}),
    "perP": ("F and β per parameter as the full task's defaults (× 14 048/2.2e5: F 192, β 640)",
             {"optimizer": {"F": 192.0, "wall_strength": 640.0}}),
    "three_stage": ("[P2] three-stage f_WL: F 3 000, t_rise 100, t_drop 500, t_off 400",
                    {"schedule": {"F": 3000.0, "t_rise": 100.0, "t_drop": 500.0, "t_off": 400.0}}),
}


def _config(name: str, seed: int, cap: int, system=(), adamw_lr=None, base=None) -> tuple[dict, dict | None]:
    from physampler import config as C

    _, over = SETTINGS[name]
    cfg = C.load(ADAMW if name == "adamw" else (base or WAND), kind="train")[0]
    cfg["train"]["device"] = "cpu"
    if name != "adamw":
        cfg["system"]["constraint"] = "none"
    elif adamw_lr is not None:
        cfg["optimizer"]["lr"] = adamw_lr
    for section in ("system", "optimizer"):
        cfg[section].update(over.get(section, {}))
    cfg["system"].update(dict(system))
    cfg["train"].update(seed=seed, steps=cap, stop_after_generalization=0, threads=1)
    return cfg, over.get("schedule")


def _trainer(name: str, seed: int, cap: int, system=(), adamw_lr=None, base=None):
    import torch

    from physampler.adapters.training import Trainer
    from physampler.schedules import ThreeStage

    torch.set_num_threads(1)
    cfg, three = _config(name, seed, cap, system, adamw_lr, base)
    tr = Trainer(cfg)
    if three is not None:
        tr.optimizer.schedule = ThreeStage(**three)
    return tr


def one_run(args: tuple) -> dict:
    """(setting, seed, cap, system overrides, AdamW lr) → the run's first passages and norms."""
    name, seed, cap, system, adamw_lr = args
    t0 = time.perf_counter()
    from physampler.faults import NumericalFault

    tr = _trainer(name, seed, cap, system, adamw_lr)
    fault = None
    try:
        tr.run(cap)
    except NumericalFault as e:  # the walker blew up: recorded as a run that never generalised
        fault = e.step
    t_fit, t_gen = tr.history.times
    norms = tr.history.column("weight_norm")
    return dict(setting=name, seed=seed, cap=cap, system=dict(system), t_fit=t_fit, t_gen=t_gen, norm0=tr.initial_norm,
                norm_end=float(norms[-1]), steps=int(tr.history.steps[-1]),
                ln_loss_end=float(tr.history.column("log_train_loss")[-1]),
                best_test=float(tr.history.column("test_accuracy").max()), fault_step=fault,
                seconds=time.perf_counter() - t0)


def summarize(runs: list[dict]) -> dict:
    gens = [math.inf if r["t_gen"] is None else r["t_gen"] for r in runs]
    delays = [math.inf if r["t_gen"] is None else (-1 if r["t_fit"] is None else r["t_gen"] - r["t_fit"])
              for r in runs]
    return dict(t_gen=statistics.median(gens), delay=statistics.median(delays),
                never=sum(r["t_gen"] is None for r in runs), faults=sum(r.get("fault_step") is not None for r in runs),
                fit=sum(r["t_fit"] is not None for r in runs),
                norm_end=statistics.median(r["norm_end"] for r in runs),
                norm_end_max=max(r["norm_end"] for r in runs),
                best_test=statistics.median(r["best_test"] for r in runs), n=len(runs))


def _fmt(x: float) -> str:
    return "∞" if math.isinf(x) else f"{x:.0f}"


def search(a) -> None:
    names = a.settings.split(",") if a.settings else list(SETTINGS)
    names = ["adamw"] + [n for n in names if n != "adamw"]  # the reference, always, over the same seeds
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        raise SystemExit(f"--settings: unknown {unknown}; allowed: {', '.join(SETTINGS)}")
    lo, _, hi = a.seeds.partition("-")
    seeds = list(range(int(lo), int(hi or lo) + 1))
    system = tuple(tuple(kv.split("=", 1)) for kv in a.system.split(",") if kv)
    system = tuple((k, _number(v)) for k, v in system)
    jobs = [(n, s, a.cap, system, a.adamw_lr) for s in seeds for n in names]  # interleaved
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, {os.cpu_count()} cores, "
          f"{a.workers} runs in parallel × 1 thread; seeds {a.seeds}, cap {a.cap} steps; "
          f"system {dict(system) or 'as the examples'}", flush=True)
    import multiprocessing as mp

    runs = []
    with ProcessPoolExecutor(a.workers, mp_context=mp.get_context("spawn")) as pool:
        for r in pool.map(one_run, jobs):
            runs.append(r)
            print(f"# {r['setting']} seed {r['seed']}: t_fit {r['t_fit']}, t_gen {r['t_gen']}, |θ| {r['norm_end']:.1f}",
                  file=sys.stderr, flush=True)
            if a.json:
                with open(a.json, "a") as fh:
                    fh.write(json.dumps(r) + "\n")
    ref = summarize([r for r in runs if r["setting"] == "adamw"])
    print("| setting | median t_gen | median delay | never | fit | t_gen / AdamW | delay / AdamW | "
          "median best test acc | median \\|θ\\| end (max) | pass |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for n in names:
        s = summarize([r for r in runs if r["setting"] == n])
        rg, rd = s["t_gen"] / ref["t_gen"], s["delay"] / ref["delay"]
        ok = rg <= 1.5 and rd <= 0.25 and n != "adamw"
        never = f"{s['never']}/{s['n']}" + (f" ({s['faults']} blew up)" if s["faults"] else "")
        label = f"AdamW lr {a.adamw_lr:g}, wd 1" if n == "adamw" and a.adamw_lr is not None else SETTINGS[n][0]
        print(f"| {n}: {label} | {_fmt(s['t_gen'])} | {_fmt(s['delay'])} | {never} | "
              f"{s['fit']}/{s['n']} | {rg:.2f} | {rd:.2f} | {s['best_test']:.2f} | "
              f"{s['norm_end']:.1f} ({s['norm_end_max']:.1f}) | {'yes' if ok else 'no'} |", flush=True)
    print(f"# {sum(r['seconds'] for r in runs):.0f} run-seconds")


def trace(a) -> None:
    import torch

    from physampler.adapters.training import global_norm
    from physampler.adapters.wand import thermal_displacement_variance

    tr = _trainer(a.setting, a.seed, a.steps, base=a.config)
    opt = tr.optimizer
    o = tr.cfg["optimizer"]
    dt, lam, kT = o["lr"], o["friction"], o["kT"]
    params = tr.params
    P = sum(p.numel() for p in params)
    theta0 = torch.cat([p.detach().reshape(-1) for p in params]).clone()
    gen = torch.Generator().manual_seed(12345)
    tkin_sum = 0.0
    along = total = 0.0
    grid = opt.landscape.grid
    deposit_work = friction_loss = wall_released = 0.0
    walls = opt.biases()
    with torch.no_grad():
        xi0 = torch.tensor([[math.log(float(tr.loss()))]], dtype=torch.float64)
    wall_prev = sum(float(b.value(xi0).sum()) for b in walls)

    def flat():
        return torch.cat([p.detach().reshape(-1) for p in params])

    def grad_ln_loss():
        with torch.enable_grad():
            g = torch.autograd.grad(torch.log(tr.loss()), params)
        return torch.cat([x.reshape(-1) for x in g])

    def stability() -> tuple[float, float]:
        """(S_tot′(ξ), dt²·κ): the slope of landscape + wall at the walker and the step's stability
        number for the stiffest direction, κ = kT·S_tot′·μ_max with μ_max the top eigenvalue of
        ∇²ln L (power iteration on Hessian–vector products); the kick–drift step is unstable on
        a direction with dt²·κ > 4 (the S″·∇ξ∇ξᵀ term is left out)."""
        with torch.no_grad():
            xi = torch.tensor([[math.log(float(tr.loss()))]], dtype=torch.float64)
        slope = float(opt.landscape.gradient(xi)[0, 0]) + sum(float(b.gradient(xi)[0, 0]) for b in walls)
        v = torch.randn(P, generator=gen, dtype=torch.float64)
        v /= v.norm()
        mu = 0.0
        for _ in range(12):
            with torch.enable_grad():
                gs = torch.autograd.grad(torch.log(tr.loss()), params, create_graph=True)
                gflat = torch.cat([x.reshape(-1) for x in gs])
                hv = torch.autograd.grad(gflat @ v.to(gflat.dtype), params)
            hv = torch.cat([x.reshape(-1) for x in hv]).double()
            mu = float(v @ hv)
            v = hv / hv.norm()
        return slope, dt * dt * kT * slope * mu

    def noise_only_change(tau: int) -> float:
        """ln L(θ + δ) − ln L(θ), δ ~ N(0, Var(τ)·I) with the exact free-walker Var of τ steps at kT:
        the thermal displacement of one interval with no force, averaged over 4 draws."""
        th = flat().clone()
        s = math.sqrt(thermal_displacement_variance(tau, dt, kT, lam))
        with torch.no_grad():
            base = math.log(float(tr.loss()))
            out = []
            for _ in range(4):
                d = torch.randn(th.shape, generator=gen, dtype=th.dtype) * s
                _load(params, th + d)
                out.append(math.log(float(tr.loss())) - base)
            _load(params, th)
        return sum(out) / len(out)

    print(f"# trace: {a.config or WAND.relative_to(ROOT)}, {a.setting} ({SETTINGS[a.setting][0]}), seed {a.seed}; P = {P}, dt {dt}, λ {lam}, kT {kT}")
    print("| step | ln L | train acc | test acc | \\|θ\\| | \\|θ−θ0\\| | thermal(kT) | thermal(T_kin) | T_kin | f_WL | "
          "first step's motion along ∇lnL (× P) | ΔlnL over the interval | ΔlnL noise alone | deposit work / P | wall energy released / P | heat out / P |"
          + (" S_tot′ | dt²κ |" if a.stability else ""))
    print("| ---: " * (18 if a.stability else 16) + "|")
    tr.record()
    prev_ln = tr.history.column("log_train_loss")[-1]
    for t in range(1, a.steps + 1):
        before = flat().clone()
        g = grad_ln_loss() if t % a.every == 1 or a.every == 1 else None
        s_before = opt.landscape.S.clone()
        xi = torch.tensor([[math.log(tr.step())]], dtype=torch.float64)
        # the deposit raises kT·Φ under the walker: potential energy put in at this step
        deposit_work += kT * float(grid.potential(opt.landscape.S, xi)[0] - grid.potential(s_before, xi)[0])
        w = sum(float(b.value(xi).sum()) for b in walls)
        wall_released += kT * (wall_prev - w)  # β(ξ − ξ0)² lost on the way down, gained on the way up
        wall_prev = w
        disp = flat() - before
        if g is not None:
            gh = g / g.norm()
            along += float(disp @ gh) ** 2
            total += float(disp @ disp)
        v = opt.velocities
        tkin = float(v @ v) / P
        tkin_sum += tkin
        friction_loss += lam * (2 - lam) * P * (tkin - kT) / 2  # the thermostat's mean heat out of the walker
        if t % a.every == 0:
            row = tr.record()
            ln = row[4]
            dth = float((flat() - theta0).norm())
            thermal = math.sqrt(P * thermal_displacement_variance(t, dt, kT, lam))
            thermal_kin = thermal * math.sqrt(tkin_sum / t / kT)
            share = P * along / total if total else float("nan")
            print(f"| {t} | {ln:.3f} | {row[2]:.3f} | {row[3]:.3f} | {float(global_norm(params)):.1f} | {dth:.1f} | "
                  f"{thermal:.1f} | {thermal_kin:.1f} | {tkin:.2f} | {opt.schedule(t):.0f} | "
                  f"{share:.1f} | {ln - prev_ln:+.3f} | {noise_only_change(a.every):+.3f} | {deposit_work / P:.2f} | "
                  f"{wall_released / P:+.2f} | {friction_loss / P:.2f} |"
                  + (" {:.3g} | {:.2f} |".format(*stability()) if a.stability else ""), flush=True)
            prev_ln = ln
            along = total = deposit_work = friction_loss = wall_released = 0.0
    print(f"# t_fit, t_gen = {tr.history.times}")


def _number(v: str):
    for kind in (int, float):
        try:
            return kind(v)
        except ValueError:
            pass
    return v


DIGITS_SETTINGS = {
    "adamw": "AdamW lr 1e-2, wd 1e-2",
    "wand_box": "WanD defaults, box c = 3 (the factory's)",
    "wand": "WanD defaults, no box",
    "wand_scaled": "WanD, no box, F and β × P/14 048 (F 142, β 474)",
}


def digits_run(args: tuple[str, int, int]) -> dict:
    """(setting, seed, steps) on the digits CNN → first step at test accuracy ≥ 0.9, best accuracy, norm."""
    import torch

    from physampler import InverseTime
    from physampler.adapters import WanD
    from physampler.adapters.torch_module import cross_entropy
    from physampler.adapters.schema import WAND_DEFAULTS
    from physampler.models.factories import digits_cnn

    torch.set_num_threads(1)
    name, seed, steps = args
    task = digits_cnn(torch.float64)
    net = task.init(torch.Generator().manual_seed(seed))
    (xtr, ytr), (xte, yte) = task.train, task.test
    params = list(net.parameters())
    P = sum(p.numel() for p in params)

    def closure():
        return cross_entropy(net(xtr)[None], ytr)[0]

    if name == "adamw":
        opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=1e-2)
    else:
        kw = {}
        if name == "wand_scaled":
            r = P / 14048
            kw = dict(schedule=InverseTime(WAND_DEFAULTS["F"] * r, WAND_DEFAULTS["t_wl"]),
                      wall_strength=WAND_DEFAULTS["wall_strength"] * r)
        opt = WanD(params, seed=seed, box=3.0 if name == "wand_box" else None, **kw)
        if name == "wand_box":
            opt.project_()
    from physampler.faults import NumericalFault

    t90, best, fault = None, 0.0, None
    for t in range(1, steps + 1):
        if name == "adamw":
            opt.zero_grad(set_to_none=True)
            closure().backward()
            opt.step()
        else:
            try:
                opt.step(closure)
            except NumericalFault as e:  # e.g. the loss underflowed to 0 at a runaway norm: the run ends here
                fault = e.step
                break
        if t % 10 == 0:
            with torch.no_grad():
                acc = float((net(xte).argmax(1) == yte).double().mean())
            best = max(best, acc)
            if t90 is None and acc >= 0.9:
                t90 = t
    with torch.no_grad():
        final = float((net(xte).argmax(1) == yte).double().mean())
        norm = float(torch.linalg.vector_norm(torch.cat([p.reshape(-1) for p in params])))
    return dict(setting=name, seed=seed, t90=t90, best=best, final=final, norm=norm, P=P, fault_step=fault)


def digits(a) -> None:
    import multiprocessing as mp

    lo, _, hi = a.seeds.partition("-")
    seeds = list(range(int(lo), int(hi or lo) + 1))
    jobs = [(n, s, a.steps) for s in seeds for n in DIGITS_SETTINGS]
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, {a.workers} runs × 1 thread; digits CNN, "
          f"seeds {a.seeds}, {a.steps} steps", flush=True)
    with ProcessPoolExecutor(a.workers, mp_context=mp.get_context("spawn")) as pool:
        runs = list(pool.map(digits_run, jobs))
    if a.json:
        with open(a.json, "a") as fh:
            for r in runs:
                fh.write(json.dumps(r) + "\n")
    print("| optimizer | median first step at test acc ≥ 0.9 | never | median best test acc | median final test acc "
          "| median \\|θ\\| end |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for n, d in DIGITS_SETTINGS.items():
        rs = [r for r in runs if r["setting"] == n]
        t90 = statistics.median(math.inf if r["t90"] is None else r["t90"] for r in rs)
        faults = sum(r["fault_step"] is not None for r in rs)
        print(f"| {d} | {_fmt(t90)} | {sum(r['t90'] is None for r in rs)}/{len(rs)}"
              + (f" ({faults} stopped by a fault)" if faults else "") + " | "
              f"{statistics.median(r['best'] for r in rs):.3f} | {statistics.median(r['final'] for r in rs):.3f} | "
              f"{statistics.median(r['norm'] for r in rs):.1f} |", flush=True)


def _load(params, flat):
    import torch

    with torch.no_grad():
        for p, chunk in zip(params, torch.split(flat, [p.numel() for p in params])):
            p.copy_(chunk.view_as(p))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("trace")
    t.add_argument("--setting", default="nobox", choices=list(SETTINGS))
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--config", default=None, help="the WanD config the setting changes (default: the CPU example; "
                   "e.g. examples/gpu/train/wand_add_p67_d128.toml for the full task, run on the CPU)")
    t.add_argument("--steps", type=int, default=1000)
    t.add_argument("--every", type=int, default=10)
    t.add_argument("--stability", action="store_true", help="add S_tot′ and the stability number dt²κ (12 "
                   "Hessian–vector products per record)")
    s = sub.add_parser("search")
    s.add_argument("--settings", default="")
    s.add_argument("--seeds", default="0-15")
    s.add_argument("--cap", type=int, default=1800)
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--json", default="")
    s.add_argument("--system", default="", help="key=value,… for every setting's [system]")
    s.add_argument("--adamw-lr", type=float, default=None)
    d = sub.add_parser("digits")
    d.add_argument("--seeds", default="0-15")
    d.add_argument("--steps", type=int, default=1500)
    d.add_argument("--workers", type=int, default=2)
    d.add_argument("--json", default="")
    sub.add_parser("list")
    a = ap.parse_args(argv)
    if a.cmd == "list":
        for k, (d, _) in SETTINGS.items():
            print(f"{k}: {d}")
    elif a.cmd == "trace":
        trace(a)
    elif a.cmd == "digits":
        digits(a)
    else:
        search(a)


if __name__ == "__main__":
    sys.exit(main())
