"""Property: a mutated valid config either runs a few steps or gives one line and writes nothing.

Mutations of the small run config (a 6-D harmonic well) and the small train config
(a p = 5 transformer under WanD): one to three keys of the schema — declared or
unknown, in a section or in place of a whole section — set to values of the wrong
type, extreme magnitudes (0, −1, 2³¹, 2⁶³ ± 1, 2⁶⁴, 10¹², 10⁴⁰⁰, ±1e308, NaN, ±inf),
plausible small ones, unicode text, lists and tables, or removed.  Each is run as
``physampler run|train CONFIG --steps 3`` in-process under a 1 GiB memory cap.
Allowed outcomes: exit 0 (it ran); exit 2 with exactly one line and no output
directory; exit 1 with one ``numerical fault`` line (a valid but unstable config,
e.g. dt = 8).  Anything else — a traceback, two lines, files left by a refused config
— fails.  Hypothesis runs derandomised (fixed seed), 300 examples per command.
"""
import contextlib
import io
import json
import math
import os
import tempfile
import tomllib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from physampler import cli
from physampler import config as C

from _configs import harmonic_config, train_text_of

RUN_BASE = tomllib.loads(harmonic_config(steps=20, walkers=3, report=10, checkpoint=10))
TRAIN_BASE = tomllib.loads(train_text_of(steps=20, checkpoint=10, p=5))

EXTREMES = [0, -1, 1, 2, 3, 2**31, 2**31 - 1, 2**63 - 1, 2**63, 2**64, 10**12, 10**400, -(10**400),
            0.0, -0.0, 1e-300, 1e300, 1e308, -1e308, math.nan, math.inf, -math.inf, 0.5, 1.5, 1e-12]
scalars = st.one_of(st.sampled_from(EXTREMES), st.integers(-3, 9), st.floats(-10, 10), st.booleans(),
                    st.text(max_size=6), st.sampled_from(["cpu", "cuda", "cuda:0", "float32", "box", "wand", "energy",
                                                          "x+y", "reflect", "wall", "upper", "linear", "\n", "é∑"]))
values = st.one_of(scalars, st.lists(scalars, max_size=3),
                   st.dictionaries(st.sampled_from(["cv", "side", "at", "strength", "shape", "x"]), scalars,
                                   max_size=5).map(lambda d: [d]))


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def toml_text(cfg: dict) -> str:
    top = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in cfg.items() if not isinstance(v, dict)]
    tables = [f"[{json.dumps(k)}]\n" + "".join(f"{json.dumps(kk)} = {toml_value(vv)}\n" for kk, vv in v.items())
              for k, v in cfg.items() if isinstance(v, dict)]
    return "\n".join(top) + "\n" + "\n".join(tables)


def mutations(base: dict, schema: dict):
    keys = [(sec, k) for sec, ks in schema.items() for k in ks]
    one = st.one_of(
        st.tuples(st.just("set"), st.sampled_from(keys), values),
        st.tuples(st.just("drop"), st.sampled_from(keys), st.none()),
        st.tuples(st.just("unknown"), st.tuples(st.sampled_from(list(schema)), st.text(min_size=1, max_size=5)),
                  values),
        st.tuples(st.just("section"), st.tuples(st.sampled_from(list(schema) + ["extra"]), st.none()), values),
    )

    def apply(ops):
        cfg = json.loads(json.dumps(base))
        for op, (sec, key), v in ops:
            if op == "section":
                cfg[sec] = v
                continue
            table = cfg.setdefault(sec, {})
            if not isinstance(table, dict):
                continue
            if op == "drop":
                table.pop(key, None)
            else:
                table[key] = v
        return cfg

    return st.lists(one, min_size=1, max_size=3).map(apply)


def check(command: str, cfg: dict):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.toml"
        path.write_text(toml_text(cfg), encoding="utf-8", errors="surrogatepass")
        out = Path(d) / "out"
        err = io.StringIO()
        old = os.environ.get("PHYSAMPLER_MEMORY_LIMIT")
        os.environ["PHYSAMPLER_MEMORY_LIMIT"] = "1G"
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = cli.main([command, str(path), "--out", str(out), "--steps", "3", "--quiet"])
        finally:
            if old is None:
                os.environ.pop("PHYSAMPLER_MEMORY_LIMIT")
            else:
                os.environ["PHYSAMPLER_MEMORY_LIMIT"] = old
        lines = [ln for ln in err.getvalue().splitlines() if not ln.startswith(("starting ", "done: "))
                 and not ln.startswith(("wand", "adamw", "sgd"))]
        assert "Traceback" not in err.getvalue(), err.getvalue()
        if code == 0:
            assert out.is_dir(), err.getvalue()
        elif code == 2:
            assert len(lines) == 1 and lines[0].startswith(("config error: ", "error: ")), err.getvalue()
            assert not out.exists(), (err.getvalue(), list(out.iterdir()))
        else:
            assert code == 1 and len(lines) == 1 and "numerical fault" in lines[0], (code, err.getvalue())


FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@FUZZ
@given(mutations(RUN_BASE, C.schema()))
def test_mutated_run_configs_run_or_give_one_line_and_write_nothing(cfg):
    check("run", cfg)


@FUZZ
@given(mutations(TRAIN_BASE, C.schema("train")))
def test_mutated_train_configs_run_or_give_one_line_and_write_nothing(cfg):
    check("train", cfg)
