"""Files: NetCDF landscapes and trajectories (CF-1.10, via xarray + netcdf4) and checkpoints.

Every file is written atomically: into a private staging directory created
(mode 0700, ``mkdtemp``) inside the target's directory, flushed and fsync'ed,
then renamed over the target (and the directory entry fsync'ed), so a reader —
or a run killed at any instant — sees either the old complete file or the new
complete file, never a truncated one.  The temporary file lives where nobody
else can plant a link, and the rename replaces a link planted at the target
instead of writing through it.

Reading user-supplied files (checkpoints, landscapes, trajectories) never
raises a bare library error: anything that cannot be used raises
:class:`FileError`, printed by the CLI as ``error: <path>: <what is wrong>``
(exit 2).

``landscape.nc``
    dimensions named after the CVs (+ ``nv`` = 2 for cell bounds); coordinates at
    bin centres with ``units``, ``long_name`` and CF ``bounds``; variables
    ``entropy`` (S − min over visited bins, NaN where unvisited — the exported
    landscape), ``histogram`` and ``sampling_entropy`` (S exactly as the sampler
    holds it, every bin, so that a landscape read back continues sampling
    exactly); global attributes ``Conventions = "CF-1.10"``, software version, the
    full config text, seed, walkers, steps done, final f_WL, creation time and the
    kernel parameters.
``trajectory.nc``
    the CVs of every walker at every report step: variables named after the CVs
    over (``step``, ``walker``); ``step`` and ``walker`` are CF coordinate
    variables (integers, units ``"1"``).

Both files pass the IOOS compliance checker for CF-1.10 (``tests/test_cf.py``) and
carry a CF ``history`` attribute.  Reduced units, which UDUNITS does not know
(``epsilon``, the Lennard-Jones or well energy unit, and ``kT``), are written as
the dimensionless ``units = "1"`` with the reduced unit named in the variable
attribute ``reduced_unit`` — physampler's documented convention, read back by
:func:`read_landscape` and :func:`cf_units`.
``checkpoint.pt``
    a dict of tensors, numbers and strings written with ``torch.save`` and read
    with ``torch.load(weights_only=True)``: loading never executes pickled code.
"""
from __future__ import annotations

import datetime as _dt
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .grid import Axis
from .landscape import Landscape, shift_visited

CHECKPOINT_FORMAT = 1
#: prefix of the staging directories of :func:`atomic_write` (left behind only by a SIGKILL)
STAGING_PREFIX = ".physampler-tmp-"


class FileError(ValueError):
    """A user-supplied file that cannot be used; ``str()`` is ``<path>: <what is wrong>``."""

    def __init__(self, path, what: str):
        self.path, self.what = str(path), what
        super().__init__(f"{self.path}: {what}")


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def atomic_write(path: str | Path, writer) -> None:
    """Call ``writer(tmp_path)`` to write a temporary file, fsync it and rename it to ``path``.

    ``tmp_path`` lies in a fresh 0700 directory next to ``path``: no other process can
    have planted a link there, whatever the writer opens.  An ``OSError`` (disk full,
    read-only file system) propagates with the old ``path`` untouched."""
    path = Path(path)
    try:
        stage = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=path.parent)
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), str(path)) from None
    tmp = os.path.join(stage, path.name)
    try:
        writer(tmp)
        fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask(), follow_symlinks=False)
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:  # name the file being written, not the staging copy (or nothing, as fsync does)
        raise OSError(e.errno, e.strerror or str(e), str(path)) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def write_text(path: str | Path, text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def regular_file(path: str | Path, what: str = "file") -> Path:
    """``path`` if it names a readable regular file (following links: reading through one is
    harmless), else :class:`FileError`; keeps devices such as /dev/zero and directories out
    of the readers."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise FileError(p, f"no such {what}") from None
    except OSError as e:
        raise FileError(p, f"cannot be read: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise FileError(p, f"is a directory, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise FileError(p, f"is not a regular file, so not a {what}")
    if st.st_size == 0:
        raise FileError(p, f"is empty, so not a {what}")
    return p


#: reduced units that UDUNITS does not know, with what they stand for (see the module docstring)
REDUCED_UNITS = {"epsilon": "the energy unit of the system (Lennard-Jones well depth; the wells' energy scale)",
                 "kT": "the thermal energy k_B T"}


def unit_attrs(units: str) -> dict:
    """The CF unit attributes of a quantity in ``units``: UDUNITS-valid ``units``, and the
    reduced unit in ``reduced_unit`` where it is one of :data:`REDUCED_UNITS`."""
    if units in REDUCED_UNITS:
        return {"units": "1", "reduced_unit": units, "comment": f"reduced unit {units}: {REDUCED_UNITS[units]}"}
    return {"units": units}


def cf_units(attrs) -> str:
    """The physical unit of a variable written with :func:`unit_attrs` (its ``reduced_unit``,
    else its ``units``; ``"1"`` if neither)."""
    return str(attrs.get("reduced_unit", attrs.get("units", "1")))


def _history(command: str | None) -> str:
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return f"{now} written by physampler {_version()}" + (f" ({command})" if command else "")


def _bounds(ax: Axis) -> np.ndarray:
    e = ax.edges().numpy()
    return np.stack([e[:-1], e[1:]], axis=1)


def landscape_dataset(landscape: Landscape, *, attrs: dict | None = None, entropy: torch.Tensor | None = None):
    """The xarray Dataset of ``landscape`` (see the module docstring).  ``entropy``: the estimate
    of ln g to write as ``entropy`` when it is not the sampler's S itself (a method other than
    Wang–Landau, :meth:`BiasedMD.log_density_of_states`); shifted and masked like S."""
    import xarray as xr

    axes = landscape.grid.axes
    dims = [a.name for a in axes]
    coords = {}
    data = {}
    for a in axes:
        coords[a.name] = (a.name, a.centres().numpy(), unit_attrs(a.units) | {"long_name": a.long_name,
                                                                               "bounds": f"{a.name}_bounds"})
        data[f"{a.name}_bounds"] = ((a.name, "nv"), _bounds(a), {"units": unit_attrs(a.units)["units"]})
    S = landscape.S.detach().cpu().numpy()
    shifted = landscape.shifted() if entropy is None else shift_visited(entropy, landscape.visited())
    data["entropy"] = (dims, shifted.detach().cpu().numpy(),
                       {"long_name": "entropy S = ln g + const, minimum over visited bins = 0 (NaN: unvisited)",
                        "units": "1"})
    data["histogram"] = (dims, landscape.H.detach().cpu().numpy(),
                         {"long_name": "visits per bin since the last histogram reset", "units": "1"})
    data["sampling_entropy"] = (dims, S, {"long_name": "S(xi, t) as held by the sampler (unshifted, every bin)",
                                          "units": "1"})
    for name in landscape.observable_sums:
        data[f"mean_{name}"] = (dims, landscape.observable_mean(name).detach().cpu().numpy(),
                                {"long_name": f"mean {name.replace('_', ' ')} of the visits to each bin (NaN: none)",
                                 "units": "1"})
        data[f"sum_{name}"] = (dims, landscape.observable_sums[name].detach().cpu().numpy(),
                               {"long_name": f"sum of {name.replace('_', ' ')} over the visits to each bin", "units": "1"})
        data[f"count_{name}"] = (dims, landscape.observable_counts[name].detach().cpu().numpy(),
                                 {"long_name": f"visits to each bin with {name.replace('_', ' ')} recorded",
                                  "units": "1"})
    base = {
        "Conventions": "CF-1.10",
        "title": "physampler entropy landscape",
        "source": f"physampler {_version()}",
        "date_created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "history": _history("entropy landscape"),
        "kernel_sigma_bins": landscape.sigma.tolist(),
        "kernel_cutoff": landscape.cutoff,
        "kernel_edge": landscape.edge,
        "out_of_range": landscape.out_of_range,
        "wall_strength": list(landscape.wall_strength),
    }
    ds = xr.Dataset(data, coords=coords, attrs=base | dict(attrs or {}))
    for name in ds.data_vars:
        if name.endswith("_bounds"):
            continue
        ds[name].encoding["_FillValue"] = np.nan if name == "entropy" or name.startswith("mean_") else None
    for a in axes:
        ds[a.name].encoding["_FillValue"] = None
        ds[f"{a.name}_bounds"].encoding["_FillValue"] = None
    return ds


def _version() -> str:
    from . import __version__

    return __version__


def _clean_attrs(attrs: dict) -> dict:
    out = {}
    for k, v in attrs.items():
        if isinstance(v, bool):
            v = int(v)
        elif isinstance(v, (list, tuple)):
            v = np.asarray(v, dtype=np.float64)
        out[k] = v
    return out


def write_netcdf(path: str | Path, ds) -> None:
    """Atomically write the xarray Dataset ``ds`` as NetCDF-4, its global attributes made storable
    (booleans as 0/1, sequences as float arrays)."""
    ds.attrs = _clean_attrs(ds.attrs)
    atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4"))


def write_landscape(path: str | Path, landscape: Landscape, *, attrs: dict | None = None,
                    entropy: torch.Tensor | None = None) -> None:
    write_netcdf(path, landscape_dataset(landscape, attrs=attrs, entropy=entropy))


def open_netcdf(path, what: str):
    """The loaded Dataset of a NetCDF file, or :class:`FileError`."""
    import xarray as xr

    p = regular_file(path, what)
    try:
        with xr.open_dataset(p, engine="netcdf4") as ds:
            return ds.load()
    except Exception as e:  # truncated, not NetCDF, unreadable: the library's reason, in one line
        reason = " ".join(str(e).split())[:160]
        raise FileError(p, f"cannot be read as NetCDF, so not a {what} ({type(e).__name__}: {reason})") from None


def _float_attr(path, attrs: dict, name: str, *, size: int | None = None) -> list[float]:
    """A numeric global attribute as floats (``size`` values, or any number ≥ 1)."""
    try:
        v = np.atleast_1d(np.asarray(attrs[name], dtype=np.float64)).reshape(-1)
    except KeyError:
        raise FileError(path, f"has no global attribute {name!r}, so not a physampler landscape.nc") from None
    except (TypeError, ValueError):
        raise FileError(path, f"global attribute {name!r} is not numeric (got {attrs[name]!r:.60})") from None
    if v.size == 0 or (size is not None and v.size != size) or not np.all(np.isfinite(v)):
        raise FileError(path, f"global attribute {name!r} must hold {size or 'one or more'} finite numbers "
                              f"(got {v.tolist()!r:.60})")
    return v.tolist()


def read_landscape(path: str | Path, *, device=None) -> tuple[Landscape, dict]:
    """A :class:`Landscape` (with the sampler's S and H, exactly) and the file's global
    attributes; :class:`FileError` for anything that is not a usable physampler landscape."""
    ds = open_netcdf(path, "physampler landscape.nc")
    for v in ("sampling_entropy", "histogram"):
        if v not in ds.data_vars:
            raise FileError(path, f"has no variable {v!r}, so not a physampler landscape.nc")
    dims = list(ds["sampling_entropy"].dims)
    if list(ds["histogram"].dims) != dims or not dims:
        raise FileError(path, f"variables 'sampling_entropy' and 'histogram' must share the CV dimensions (got "
                              f"{dims} and {list(ds['histogram'].dims)})")
    axes = []
    for d in dims:
        if f"{d}_bounds" not in ds.variables:
            raise FileError(path, f"has no cell bounds {d + '_bounds'!r} for the CV axis {d!r}")
        b = np.asarray(ds[f"{d}_bounds"].values, dtype=np.float64)
        if b.ndim != 2 or b.shape[1] != 2 or b.shape[0] != ds.sizes[d] or not np.all(np.isfinite(b)):
            raise FileError(path, f"cell bounds {d + '_bounds'!r} must be [{ds.sizes[d]}, 2] finite numbers")
        try:
            axes.append(Axis(d, float(b[0, 0]), float(b[-1, 1]), bins=b.shape[0],
                             units=cf_units(ds[d].attrs), long_name=str(ds[d].attrs.get("long_name", d))))
        except ValueError as e:
            raise FileError(path, f"CV axis {d!r}: {e}") from None
    a = ds.attrs
    sigma = _float_attr(path, a, "kernel_sigma_bins")
    cutoff = _float_attr(path, a, "kernel_cutoff", size=1)[0]
    walls = _float_attr(path, a, "wall_strength")
    try:
        ls = Landscape(axes, sigma=sigma if len(sigma) > 1 else sigma[0], cutoff=cutoff, edge=str(a.get("kernel_edge")),
                       out_of_range=str(a.get("out_of_range")), wall_strength=walls if len(walls) > 1 else walls[0],
                       device=device)
    except ValueError as e:
        raise FileError(path, f"kernel or edge attributes: {e}") from None
    for v, t in (("sampling_entropy", ls.S), ("histogram", ls.H)):
        x = np.asarray(ds[v].values, dtype=np.float64)
        if v == "histogram" and not (np.all(np.isfinite(x)) and np.all(x >= 0)):
            raise FileError(path, "variable 'histogram' must hold finite counts >= 0")
        t.copy_(torch.from_numpy(x))
    if not bool(torch.isfinite(ls.S).all()):
        raise FileError(path, "variable 'sampling_entropy' holds NaN or Inf")
    for v in ds.data_vars:
        if v.startswith("sum_") and f"count_{v[4:]}" in ds.data_vars:
            name = v[4:]
            ls.observable_sums[name] = torch.from_numpy(np.asarray(ds[v].values, dtype=np.float64).copy()).to(ls.device)
            ls.observable_counts[name] = torch.from_numpy(
                np.asarray(ds[f"count_{name}"].values, dtype=np.float64).copy()).to(ls.device)
    return ls, dict(a)


def read_entropy(path: str | Path) -> np.ndarray:
    """The ``entropy`` variable of a physampler landscape.nc (ln g estimate, NaN at unvisited bins)."""
    ds = open_netcdf(path, "physampler landscape.nc")
    if "entropy" not in ds.data_vars:
        raise FileError(path, "has no variable 'entropy', so not a physampler landscape.nc")
    return np.asarray(ds["entropy"].values, dtype=np.float64)


def density_of_states(path: str | Path, landscape: Landscape, attrs: dict) -> np.ndarray:
    """ln g (shifted, NaN at unvisited bins) of a landscape read by :func:`read_landscape`: the
    sampler's own S for Wang–Landau (files without a ``method`` attribute included), whose copy in
    ``entropy`` a hand edit cannot change; the ``entropy`` variable for any other method, whose
    sampler grid is a bias rather than ln g (docs/science.md §4)."""
    if str(attrs.get("method", "wang_landau")) == "wang_landau":
        return landscape.shifted().numpy()
    return read_entropy(path)


def write_trajectory(path: str | Path, steps: np.ndarray, values: np.ndarray, names, units, walkers,
                     *, attrs: dict | None = None, long_names=None, step_name: str = "WLMD step") -> None:
    """CV values [n, W, K] at ``steps`` [n] (strictly increasing) of walkers ``walkers`` (global
    indices); also the per-step history of ``physampler train`` (one walker: the trained network)."""
    import xarray as xr

    steps = np.asarray(steps, dtype=np.int64)
    if steps.size > 1 and not np.all(np.diff(steps) > 0):
        raise ValueError("write_trajectory: steps must increase strictly (they are a CF coordinate)")
    data = {}
    for k, name in enumerate(names):
        long = long_names[k] if long_names is not None else f"{name} of each walker"
        data[name] = (("step", "walker"), values[:, :, k] if values.size else np.zeros((0, len(walkers))),
                      unit_attrs(units[k]) | {"long_name": long})
    ds = xr.Dataset(data, coords={"step": ("step", steps, {"long_name": step_name, "units": "1"}),
                                  "walker": ("walker", np.asarray(walkers, dtype=np.int64),
                                             {"long_name": "global walker index", "units": "1"})},
                    attrs=_clean_attrs({"Conventions": "CF-1.10", "title": "physampler CV trajectories",
                                        "source": f"physampler {_version()}",
                                        "history": _history(step_name + " records")} | dict(attrs or {})))
    for v in ds.variables:
        ds[v].encoding["_FillValue"] = None
    atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4",
                                                unlimited_dims=["step"]))


def read_trajectory(path: str | Path, names=None):
    """The Dataset of a trajectory.nc (or a training history.nc) over (``step``, ``walker``);
    :class:`FileError` when it cannot be read or lacks the ``step`` coordinate or one of the
    variables ``names``.  Files of physampler 0.1 before the CF fix (dimension ``time`` with a
    ``step`` variable along it) are read the same way."""
    ds = open_netcdf(path, "physampler trajectory")
    missing = [n for n in ["step", *(names or [])] if n not in ds.variables]
    if missing:
        raise FileError(path, f"has no variable {missing[0]!r} (a physampler trajectory.nc or history.nc has "
                              f"'step' and one variable per CV)")
    if "time" in ds.dims and ds["step"].dims == ("time",):
        ds = ds.swap_dims({"time": "step"})
    if ds["step"].dims != ("step",):
        raise FileError(path, f"variable 'step' must lie along its own dimension 'step' (got {ds['step'].dims})")
    return ds


def check_same_task(landscape_attrs: dict, trajectory, tr) -> None:
    """A trajectory or history ``tr`` (Dataset) read on a landscape must come from the same system
    (data and network): :class:`FileError` naming ``trajectory`` and the keys that differ."""
    from . import config as C

    texts = [str(landscape_attrs.get("config", "")), str(tr.attrs.get("config", ""))]
    try:
        a, b = (C.parse(t, kind=C.kind_of(t))["system"] for t in texts)
    except (C.ConfigError, ValueError):
        return  # one of them carries no config: nothing to compare
    from .registry import systems

    kind = systems().get(a["kind"])
    identity = kind.identity if kind is not None and kind.identity is not None else tuple(a)
    keys = [k for k in ("kind", *identity) if k in a and k in b and a[k] != b[k]]
    if keys:
        diff = ", ".join(f"system.{k} = {b[k]!r} (landscape {a[k]!r})" for k in keys)
        raise FileError(trajectory, f"is a run of another system than the landscape's: {diff}")


@dataclass
class RecordedPath:
    """One walker's record of CVs ``names`` from a trajectory.nc or history.nc: ``steps`` [n],
    ``values`` [len(names), n], the file's attributes and a label for plots."""

    steps: np.ndarray
    values: np.ndarray
    attrs: dict
    label: str


def read_path(path: str | Path, names, *, walker: int = 0, landscape_attrs: dict | None = None) -> RecordedPath:
    """Walker ``walker`` (position along the file's walker dimension) of :func:`read_trajectory`;
    with ``landscape_attrs``, checked to come from the landscape's system (:func:`check_same_task`)."""
    tr = read_trajectory(path, names)
    if tr[names[0]].ndim != 2 or not tr.sizes.get("step", 0):
        raise FileError(path, f"holds no records of {', '.join(names)} over (step, walker)")
    n = tr.sizes.get("walker", 1)
    if not 0 <= walker < n:
        raise ValueError(f"--walker: must be 0..{n - 1} for {str(path)!r} (got {walker})")
    if landscape_attrs is not None:
        check_same_task(landscape_attrs, path, tr)
    values = np.stack([np.asarray(tr[k].values[:, walker], dtype=np.float64) for k in names])
    label = str(tr.attrs.get("label", f"walker {int(tr['walker'].values[walker])}"))
    return RecordedPath(np.asarray(tr["step"].values, dtype=np.int64), values, dict(tr.attrs), label)


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """Atomically write a checkpoint (tensors, numbers, strings, lists and dicts of them)."""
    payload = {"format": CHECKPOINT_FORMAT} | payload
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path, *, keys=()) -> dict:
    """Read a checkpoint with ``weights_only=True`` (no pickled code runs); :class:`FileError`
    when it is not a physampler checkpoint or lacks one of ``keys``."""
    p = regular_file(path, "physampler checkpoint")
    try:
        out = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # a foreign, damaged or malicious file: say so in one line
        kind = "refused: it holds pickled objects other than tensors" if "weights_only" in str(e) else \
            f"cannot be read ({type(e).__name__})"
        raise FileError(p, f"not a physampler checkpoint: {kind}") from None
    if not isinstance(out, dict) or out.get("format") != CHECKPOINT_FORMAT:
        raise FileError(p, f"not a physampler checkpoint of format {CHECKPOINT_FORMAT}")
    missing = [k for k in keys if k not in out]
    if missing:
        raise FileError(p, f"incomplete checkpoint: no {missing[0]!r} entry")
    return out
