"""Shared small job configs for the job and distributed tests (a 6-D harmonic well, torch path)."""


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
