"""Shared small configs of the tests: a 6-D harmonic well job (torch path), a p = 7 training run and a
p = 5 network landscape."""


def harmonic_config(*, steps: int, walkers: int, report: int, checkpoint: int, sync_interval: int = 100,
                    sync_timeout: float = 300.0) -> str:
    return f"""
[system]
kind = "harmonic"
dims = 6

[landscape]
lower = [0.5]
upper = [12.5]
bins = [60]
out_of_range = "wall"
wall_strength = 2.0

[integrator]
dt = 0.05
c_f = 0.02

[schedule]
F = 0.5
t_wl = 500

[run]
walkers = {walkers}
steps = {steps}
seed = 4
sync_interval = {sync_interval}
sync_timeout = {sync_timeout}

[output]
report_interval = {report}
checkpoint_interval = {checkpoint}
plot = false
"""


def train_config(*, name: str, lr: float, steps: int, system: str = "", optimizer: str = "", train: str = "",
                 output: str = "") -> str:
    """A tiny transformer (p = 7, d_model 8) trained full-batch; extra lines go into each section."""
    return f"""
[system]
p = 7
train_fraction = 0.6
d_model = 8
heads = 2
d_head = 4
d_mlp = 16
{system}

[optimizer]
name = "{name}"
lr = {lr}
{optimizer}

[train]
steps = {steps}
{train}

[output]
{output}
"""


#: WanD on a short ln L grid with the low-loss wall, for the tiny training runs
WAND = 'wall_at = 0.0\nlower = -6.0\nupper = 3.0\nbins = 180'


def train_text_of(optimizer="wand", steps=200, checkpoint=50, system="", p=7) -> str:
    lr = 1e-3 if optimizer == "wand" else 3e-3
    opt = WAND if optimizer == "wand" else "weight_decay = 1.0"
    return train_config(name=optimizer, lr=lr, steps=steps, system=system, optimizer=opt, train="record_interval = 10",
                      output=f"checkpoint_interval = {checkpoint}\nplot = false").replace("p = 7", f"p = {p}")


def nn_config(extra: str = "") -> str:
    """A tiny 2-D network landscape (p = 5, d_model 4, 2 walkers × 20 steps)."""
    return f"""
[system]
kind = "nn"
p = 5
d_model = 4
heads = 1
d_head = 2
d_mlp = 4
strategy = "batched"  # two fresh runs compared bit for bit must not let a timed probe choose
{extra}

[cvs]
names = ["log_train_loss", "smoothed_accuracy"]

[landscape]
lower = [-6.0, 0.0]
upper = [3.0, 1.0]
bins = [30, 10]
out_of_range = "wall"

[integrator]
dt = 0.001

[run]
walkers = 2
steps = 20

[output]
report_interval = 10
checkpoint_interval = 10
plot = false
"""
