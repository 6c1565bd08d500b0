"""Full-batch training of the modular-arithmetic models ([P1] §4–5; docs/science.md §8–9).

``physampler train CONFIG`` runs one of

* ``adamw`` — ``torch.optim.AdamW`` (the grokking baselines of [P1] Table 1),
* ``sgd``   — ``torch.optim.SGD``,
* ``wand``  — :class:`physampler.adapters.WanD`, Wang–Landau dynamics on ln L_train,

on the full training set every step, optionally at a fixed global weight norm R
(AdamW/SGD: all parameters rescaled to |θ| = R after every step, and once before
the first; WanD: the core's fixed-norm shell).  After every ``record_interval``
steps it records, at the current parameters: train and test cross-entropy and
accuracy, the smoothed test accuracy Ã (the landscape's y axis, sharpness k),
ln L_train and the global weight norm.

Grokking times ([P1]; the issue's definitions): t_fit = first recorded step with
train accuracy ≥ 0.99, t_gen = first with test accuracy ≥ 0.95, delay = t_gen − t_fit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..faults import NumericalFault
from ..models.tasks import ModularTask
from ..schedules import InverseTime
from .modular import network_from_config
from .torch_module import cross_entropy, smoothed_accuracy
from .wand import WanD

FIT_ACCURACY = 0.99
GEN_ACCURACY = 0.95

#: history variables: (name, units, long_name)
HISTORY_VARIABLES = (
    ("train_loss", "1", "mean training cross-entropy L_train"),
    ("test_loss", "1", "mean test cross-entropy"),
    ("train_accuracy", "1", "training accuracy"),
    ("test_accuracy", "1", "test accuracy"),
    ("log_train_loss", "1", "ln of the mean training cross-entropy"),
    ("smoothed_accuracy", "1", "smoothed test accuracy (sigmoid surrogate)"),
    ("weight_norm", "1", "global L2 norm of the parameters"),
)


def grokking_times(steps, train_accuracy, test_accuracy) -> tuple[int | None, int | None]:
    """(t_fit, t_gen): first step with train accuracy ≥ 0.99 and with test accuracy ≥ 0.95 (None if never)."""
    steps = np.asarray(steps)
    fit = np.nonzero(np.asarray(train_accuracy) >= FIT_ACCURACY)[0]
    gen = np.nonzero(np.asarray(test_accuracy) >= GEN_ACCURACY)[0]
    return (int(steps[fit[0]]) if fit.size else None), (int(steps[gen[0]]) if gen.size else None)


@dataclass
class History:
    steps: list = field(default_factory=list)
    values: list = field(default_factory=list)  # one row per record, in HISTORY_VARIABLES order

    def column(self, name: str) -> np.ndarray:
        k = [v[0] for v in HISTORY_VARIABLES].index(name)
        return np.array([row[k] for row in self.values], dtype=np.float64)

    @property
    def times(self) -> tuple[int | None, int | None]:
        return grokking_times(self.steps, self.column("train_accuracy"), self.column("test_accuracy"))

    @property
    def delay(self) -> int | None:
        t_fit, t_gen = self.times
        return None if t_fit is None or t_gen is None else t_gen - t_fit


def global_norm(params) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.cat([p.detach().reshape(-1) for p in params]))


@torch.no_grad()
def rescale_to_norm(params, radius: float) -> None:
    """θ ← R·θ/|θ| over all parameters together (the fixed-norm training of [P1] §4.2)."""
    params = list(params)
    scale = radius / global_norm(params)
    for p in params:
        p.mul_(scale.to(p.dtype))


def make_optimizer(cfg: dict, params):
    o, s = cfg["optimizer"], cfg["system"]
    if o["name"] == "adamw":
        return torch.optim.AdamW(params, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"],
                                 weight_decay=o["weight_decay"])
    if o["name"] == "sgd":
        return torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"])
    return WanD(params, lr=o["lr"], friction=o["friction"], kT=o["kT"], schedule=InverseTime(o["F"], o["t_wl"]),
                lower=o["lower"], upper=o["upper"], bins=o["bins"], sigma=o["sigma"], wall_at=o["wall_at"],
                wall_strength=o["wall_strength"], edge_wall_strength=o["edge_wall_strength"], box=s["box_c"] if s["constraint"] == "box" else None,
                norm=s["norm_radius"] if s["constraint"] == "norm" else None, seed=cfg["train"]["seed"],
                splitting=o["splitting"])


class Trainer:
    """The model, data and optimizer of a ``train`` config, stepped full-batch."""

    def __init__(self, cfg: dict):
        s, t = cfg["system"], cfg["train"]
        self.cfg = cfg
        self.threads = (torch.get_num_threads(), "torch default")  # run_training sets them from train.threads
        self.device = torch.device(t["device"])
        self.dtype = torch.float64 if t["dtype"] == "float64" else torch.float32
        task = ModularTask(s["task"], s["p"], train_fraction=s["train_fraction"], split_seed=s["split_seed"])
        (xtr, ytr), (xte, yte) = task.split()
        self.train_data = (xtr.to(self.device), ytr.to(self.device))
        self.test_data = (xte.to(self.device), yte.to(self.device))
        self.model = network_from_config({"system": s}, torch.Generator().manual_seed(t["seed"]), self.dtype)
        self.model.to(self.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.norm = s["norm_radius"] if s["constraint"] == "norm" else None
        self.wand = cfg["optimizer"]["name"] == "wand"
        if self.norm is not None and not self.wand:
            rescale_to_norm(self.params, self.norm)
        self.optimizer = make_optimizer(cfg, self.params)
        if self.wand:  # the recorded start is a state of the constrained system
            self.optimizer.project_()
        self.step_count = 0
        self.history = History()
        self.initial_norm = float(global_norm(self.params))

    def loss(self) -> torch.Tensor:
        x, y = self.train_data
        return cross_entropy(self.model(x)[None], y)[0]

    def step(self) -> float:
        """One optimizer step; returns the training loss it saw."""
        self.step_count += 1
        if self.wand:
            loss = self.optimizer.step(self.loss)
        else:
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss()
            loss.backward()
            self.optimizer.step()
            if self.norm is not None:
                rescale_to_norm(self.params, self.norm)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NumericalFault(f"step {self.step_count}, walker 0: non-finite training loss", step=self.step_count,
                                 walker=0)
        return value

    @torch.no_grad()
    def record(self) -> list[float]:
        (xtr, ytr), (xte, yte) = self.train_data, self.test_data
        ztr, zte = self.model(xtr), self.model(xte)
        ltr = float(cross_entropy(ztr[None], ytr)[0])
        row = [ltr, float(cross_entropy(zte[None], yte)[0]), float((ztr.argmax(-1) == ytr).double().mean()),
               float((zte.argmax(-1) == yte).double().mean()), math.log(ltr) if ltr > 0 else -math.inf,
               float(smoothed_accuracy(zte[None], yte, self.cfg["system"]["sharpness"])[0]),
               float(global_norm(self.params))]
        self.history.steps.append(self.step_count)
        self.history.values.append(row)
        return row

    def run(self, steps: int, *, progress: bool = False) -> History:
        """Step until ``steps`` or ``train.stop_after_generalization`` with the one driver loop
        (:func:`physampler.driver.drive`; no checkpoints: see :func:`run_training`); returns the
        history, which ends with a record of the last step."""
        from ..driver import drive

        if not self.history.steps:
            self.record()
        drive(TrainTask(self), total=steps, report=self.cfg["train"]["record_interval"], checkpoint=0,
              progress=progress, log=lambda line: None)
        return self.history

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """The whole training state as plain tensors and numbers (``torch.load(weights_only=True)``)."""
        n = len(HISTORY_VARIABLES)
        return {"step": self.step_count, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "initial_norm": self.initial_norm,
                "history_steps": torch.tensor(self.history.steps, dtype=torch.int64),
                "history_values": torch.tensor(self.history.values, dtype=torch.float64).reshape(-1, n)}

    def load_state_dict(self, sd: dict) -> None:
        """Restore :meth:`state_dict`; ``ValueError`` naming the entry that does not fit this trainer."""
        step, steps, values = sd["step"], sd["history_steps"], sd["history_values"]
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an integer >= 0 (got {step!r:.40})")
        n = len(HISTORY_VARIABLES)
        if not (isinstance(steps, torch.Tensor) and isinstance(values, torch.Tensor) and steps.dim() == 1
                and tuple(values.shape) == (steps.numel(), n) and steps.numel() >= 1):
            raise ValueError(f"history_steps [n] and history_values [n, {n}] must be tensors with n >= 1")
        recorded = steps.tolist()
        if recorded[0] != 0 or recorded[-1] > step or any(b <= a for a, b in zip(recorded, recorded[1:])):
            raise ValueError(f"history_steps must rise from 0 to at most step {step}")
        try:
            self.model.load_state_dict(sd["model"], strict=True)
        except (RuntimeError, TypeError, AttributeError) as e:
            raise ValueError(f"model state does not fit this config's network: {' '.join(str(e).split())[:200]}") \
                from None
        try:
            self.optimizer.load_state_dict(sd["optimizer"])
        except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError) as e:
            raise ValueError(f"optimizer state does not fit this config's optimizer ({type(e).__name__}: "
                             f"{' '.join(str(e).split())[:200]})") from None
        self.step_count = step
        self.initial_norm = float(sd["initial_norm"])
        self.history = History(steps=recorded, values=values.tolist())


class TrainTask:
    """Training as a driver :class:`~physampler.driver.Task`: full-batch steps, a record at every
    report step, the stopping rule ``train.stop_after_generalization``.  ``write_state()`` writes a
    checkpoint; ``finish(final_checkpoint)`` the outputs of a run that ended (normally or by a
    signal).  A checkpoint's history holds only the records an uninterrupted run makes — the
    record of an off-record last step is added after it — so a resume continues it exactly."""

    sync_interval = None

    def __init__(self, trainer: Trainer, write_state=None, finish=None, out=None):
        self.trainer, self.write_state, self.finish, self.out = trainer, write_state, finish, out
        self.after = trainer.cfg["train"]["stop_after_generalization"]

    @property
    def step(self) -> int:
        return self.trainer.step_count

    def advance(self, n: int, stop) -> None:
        for _ in range(n):
            self.trainer.step()
            if stop():
                break

    def sync(self, step: int, stop: bool) -> bool:
        return stop

    def report(self, bar, merged: bool) -> bool:
        row = self.trainer.record()
        bar.update(self.step, text=f"loss {row[0]:.3g}, train acc {row[2]:.3f}, test acc {row[3]:.3f}, |θ| {row[6]:.1f}")
        t_gen = self.trainer.history.times[1]
        return self.after is not None and t_gen is not None and self.step >= t_gen + self.after

    def _close(self, final_checkpoint: bool) -> None:
        if self.trainer.history.steps[-1] != self.step:  # ended between records
            self.trainer.record()
        if self.finish is not None:
            self.finish(final_checkpoint)

    def checkpoint(self, final: bool) -> None:
        if final:
            self._close(True)
        elif self.write_state is not None:
            self.write_state()

    def stopped(self, sig: int) -> str:
        import signal

        self._close(False)
        return (f"{signal.Signals(sig).name} at step {self.step}: checkpoint written to {self.out / 'checkpoint.pt'}; "
                "continue with --resume")


def write_history(path, history: History, *, attrs: dict) -> None:
    from ..io import write_trajectory

    values = np.array(history.values, dtype=np.float64).reshape(len(history.steps), 1, len(HISTORY_VARIABLES))
    t_fit, t_gen = history.times
    meta = {"title": "physampler training history", "t_fit": -1 if t_fit is None else t_fit,
            "t_gen": -1 if t_gen is None else t_gen, "grokking_delay": -1 if history.delay is None else history.delay,
            "comment": "t_fit: first step with train accuracy >= 0.99; t_gen: first step with test accuracy >= 0.95; "
                       "-1: not reached"} | attrs
    write_trajectory(path, np.array(history.steps), values, [v[0] for v in HISTORY_VARIABLES],
                     [v[1] for v in HISTORY_VARIABLES], [0], attrs=meta, long_names=[v[2] for v in HISTORY_VARIABLES],
                     step_name="optimizer step")


TRAIN_OUTPUTS = ("history.nc", "model.pt", "history.png", "config.toml", "checkpoint.pt")
CHECKPOINT_KEYS = ("config", "step", "model", "optimizer", "initial_norm", "history_steps", "history_values")


def run_training(cfg: dict, text: str, out, *, resume: bool = False, overwrite: bool = False, progress: bool = True,
                 log=print) -> int:
    """``physampler train``: train, then write history.nc (CF-1.10, the per-step record),
    model.pt (model and optimizer state dicts, for ``torch.load(weights_only=True)``),
    history.png and config.toml, each atomically.  Every ``output.checkpoint_interval`` steps,
    on SIGINT/SIGTERM (after the current step; exit 130/143) and at the end it writes
    history.nc so far and checkpoint.pt (the whole state: model, optimizer — WanD's landscape
    and random stream included —, history); ``resume`` continues checkpoint.pt bit for bit.
    Returns the exit status."""
    from pathlib import Path

    from ..driver import drive
    from ..signals import catch_signals
    from ..io import save_checkpoint, write_text
    from ..job import preflight, threads_note
    from ..outdir import OutputDirectory

    out = Path(out)
    preflight(cfg, "train")  # before touching the disk: a config that cannot run writes nothing
    outdir = OutputDirectory(out, resume=resume, overwrite=overwrite, outputs=TRAIN_OUTPUTS,
                             checkpoint="checkpoint.pt").open()
    try:
        trainer, ck = _open_trainer(cfg, out, resume)
        total = cfg["train"]["steps"]
        outdir.commit()  # every input checked: only now are old outputs replaced
        write_text(out / "config.toml", text)
        o = cfg["optimizer"]
        label = o["name"] if cfg["system"]["constraint"] != "norm" else f"{o['name']} |θ|={cfg['system']['norm_radius']:g}"
        attrs = {"label": label, "optimizer": o["name"], "config": text, "seed": cfg["train"]["seed"],
                 "torch_threads": trainer.threads[0]}

        def write_state():
            # The checkpoint first: it holds the history, so a kill between the two writes leaves
            # history.nc behind it (a resume rewrites it), never ahead of what can be resumed.
            save_checkpoint(out / "checkpoint.pt", {"config": text, "threads": trainer.threads[0]} | trainer.state_dict())
            write_history(out / "history.nc", trainer.history, attrs=attrs | {"initial_norm": trainer.initial_norm})

        def finish(final_checkpoint: bool):
            _final_outputs(cfg, text, out, trainer, attrs, final_checkpoint=final_checkpoint)

        flag, handlers = catch_signals()  # before the start line: a signal after it always ends with a checkpoint
        log((f"resuming at step {trainer.step_count} of {total} in {out}" if ck is not None
             else f"starting {label} training, {total} steps, in {out}") + threads_note(trainer.threads))
        if not trainer.history.steps:
            trainer.record()
        try:
            code = drive(TrainTask(trainer, write_state, finish, out), total=total,
                         report=cfg["train"]["record_interval"], checkpoint=cfg["output"]["checkpoint_interval"],
                         progress=progress, log=log, flag=flag, handlers=handlers)
        except NumericalFault:
            # the records up to the faulting step are what a user needs to see; checkpoint.pt stays the last good one
            write_history(out / "history.nc", trainer.history, attrs=attrs | {"initial_norm": trainer.initial_norm})
            raise
    finally:
        outdir.abandon()  # leaves a refused directory as it was found; after the first write, only unlocks
    if code == 0:
        log(_summary(label, trainer, out))
    return code


def _open_trainer(cfg: dict, out, resume: bool):
    """The Trainer of ``cfg``, continued from ``out/checkpoint.pt`` when resuming: (trainer, checkpoint
    or None); :class:`~physampler.io.FileError` for a checkpoint that does not fit."""
    from ..io import FileError, load_checkpoint
    from ..job import check_resume_config

    from ..threads import apply, stored_threads

    ck = None
    if resume:
        ck = load_checkpoint(out / "checkpoint.pt", keys=CHECKPOINT_KEYS)
        check_resume_config(cfg, ck["config"], out / "checkpoint.pt", kind="train")
    chosen = apply(cfg["train"]["threads"], stored=stored_threads(ck))
    trainer = Trainer(cfg)
    trainer.threads = chosen
    if ck is not None:
        try:
            trainer.load_state_dict(ck)
        except ValueError as e:
            raise FileError(out / "checkpoint.pt", f"does not fit this training run: {e}") from None
    if trainer.step_count > cfg["train"]["steps"]:
        raise FileError(out / "checkpoint.pt", f"is already at step {trainer.step_count}, beyond train.steps = "
                                               f"{cfg['train']['steps']}")
    return trainer, ck


def _final_outputs(cfg: dict, text: str, out, trainer, attrs: dict, *, final_checkpoint: bool) -> None:
    """checkpoint.pt (unless a signal already wrote it), history.nc, model.pt and history.png."""
    from ..io import save_checkpoint

    if final_checkpoint:
        save_checkpoint(out / "checkpoint.pt", {"config": text, "threads": trainer.threads[0]} | trainer.state_dict())
    write_history(out / "history.nc", trainer.history, attrs=attrs | {"initial_norm": trainer.initial_norm})
    save_checkpoint(out / "model.pt", {"config": text, "step": trainer.step_count,
                                       "model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict()})
    if cfg["output"]["plot"]:
        from ..plotting import plot_training

        plot_training([out / "history.nc"], out / "history.png")


def _summary(label: str, trainer, out) -> str:
    """The closing line of a finished training run."""
    t_fit, t_gen = (("not reached" if t is None else t) for t in trainer.history.times)
    delay = "—" if trainer.history.delay is None else trainer.history.delay
    last = trainer.history.values[-1]
    return (f"{label}: {trainer.step_count} steps; t_fit {t_fit}, t_gen {t_gen}, delay {delay}; "
            f"final train acc {last[2]:.3f}, test acc {last[3]:.3f}, |θ| {trainer.initial_norm:.1f} → {last[6]:.1f}; "
            f"wrote {', '.join(p for p in TRAIN_OUTPUTS if (out / p).exists())} in {out}")
