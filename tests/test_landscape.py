"""Landscape: deposit, gradient, edges, out-of-range policy, merging, argument checks."""
import math

import pytest
import torch

import physampler as ps
from physampler.faults import OutOfGridError


def land1(**kw):
    kw.setdefault("sigma", 1.5)
    return ps.Landscape([ps.Axis("x", 0.0, 10.0, bins=100)], **kw)


def land2(**kw):
    kw.setdefault("sigma", 1.5)
    return ps.Landscape([ps.Axis("x", -1.0, 1.0, bins=40), ps.Axis("y", 0.0, 3.0, bins=30)], **kw)


@pytest.mark.parametrize("edge", ["reflect", "truncate"])
def test_deposit_is_normalised_and_centred(edge):
    # Interior deposit: sum = height exactly (kernel normalised); centroid = xi up to
    # the truncation at 4 sigma, which can drop one tail bin of relative weight
    # <= exp(-8)/(sigma sqrt(2 pi)) = 8.9e-5 at distance 4 sigma = 0.6: shift <= 5.4e-5.
    L = land1(edge=edge)
    xi = torch.tensor([[4.2371]], dtype=torch.float64)
    L.deposit(xi, 0.7)
    assert float(L.S.sum()) == pytest.approx(0.7, rel=1e-13)
    c = L.grid.axes[0].centres()
    assert float((L.S * c).sum() / L.S.sum()) == pytest.approx(4.2371, abs=5.4e-5)
    assert float(L.H.sum()) == 1.0 and float(L.H[42]) == 1.0


def test_edge_deposit_reflect_keeps_mass_truncate_loses_it():
    xi = torch.tensor([[0.03]], dtype=torch.float64)
    r, t = land1(edge="reflect"), land1(edge="truncate")
    r.deposit(xi, 1.0)
    t.deposit(xi, 1.0)
    assert float(r.S.sum()) == pytest.approx(1.0, rel=1e-13)
    # about half of a Gaussian centred 0.2 bins inside the edge falls outside
    assert 0.4 < float(t.S.sum()) < 0.7
    # reflection mirrors at the edge: bins 0 and 1 receive the direct plus the image parts
    assert float(r.S[0]) > float(t.S[0])


def test_deposit_2d_normalised():
    L = land2()
    L.deposit(torch.tensor([[0.13, 1.71], [-0.5, 0.4]], dtype=torch.float64), torch.tensor([0.25, 0.5]))
    assert float(L.S.sum()) == pytest.approx(0.75, rel=1e-13)
    assert float(L.H.sum()) == 2.0


def test_batched_deposit_equals_sequential():
    g = torch.Generator().manual_seed(1)
    xi = torch.stack([torch.rand(16, generator=g, dtype=torch.float64) * 2 - 1,
                      torch.rand(16, generator=g, dtype=torch.float64) * 3], dim=1)
    a, b = land2(), land2()
    a.deposit(xi, 0.3)
    for w in range(16):
        b.deposit(xi[w : w + 1], 0.3)
    assert torch.equal(a.S, b.S) and torch.equal(a.H, b.H)


def test_gradient_exact_on_quadratic_1d_including_edges():
    L = land1()
    c = L.grid.axes[0].centres()
    L.S.copy_(3.0 - 2.0 * c + 0.37 * c**2)
    # second-order stencils are exact for a quadratic at every centre, edges included,
    # and linear interpolation of the (linear) derivative is exact between centres
    x = torch.linspace(0.05, 9.95, 301, dtype=torch.float64)[:, None]
    g = L.gradient(x)[:, 0]
    assert torch.allclose(g, -2.0 + 0.74 * x[:, 0], rtol=0, atol=1e-11)
    # beyond the outermost centres the edge value is held
    g_out = L.gradient(torch.tensor([[0.0], [10.0]], dtype=torch.float64))[:, 0]
    assert torch.allclose(g_out, torch.tensor([-2 + 0.74 * 0.05, -2 + 0.74 * 9.95], dtype=torch.float64), atol=1e-11)


def test_gradient_sign_and_value_2d():
    L = land2()
    x, y = [a.centres() for a in L.grid.axes]
    X, Y = torch.meshgrid(x, y, indexing="ij")
    L.S.copy_(1.5 * X**2 - 0.5 * X * Y + 0.8 * Y)
    pts = torch.tensor([[0.3, 1.2], [-0.71, 2.33], [0.0, 0.5]], dtype=torch.float64)
    g = L.gradient(pts)
    exact = torch.stack([3.0 * pts[:, 0] - 0.5 * pts[:, 1], -0.5 * pts[:, 0] + 0.8], dim=1)
    assert torch.allclose(g, exact, atol=1e-11)
    assert g[0, 0] > 0 and g[1, 0] < 0  # slope of 1.5x^2 follows the sign of x


def test_value_interpolates_linearly():
    L = land1()
    c = L.grid.axes[0].centres()
    L.S.copy_(2.0 * c + 1.0)
    assert float(L.value(torch.tensor([[3.333]], dtype=torch.float64))[0]) == pytest.approx(7.666, abs=1e-12)


def test_out_of_range_raise_names_step_walker_and_value():
    L = land1()
    xi = torch.tensor([[5.0], [10.5], [3.0]], dtype=torch.float64)
    with pytest.raises(OutOfGridError, match=r"step 17, walker 1: .*x = 10\.5 \(grid \[0, 10\]\)") as e:
        L.check_range(xi, 17)
    assert e.value.step == 17 and e.value.walker == 1


def test_out_of_range_wall_pushes_back_and_skips_deposit():
    L = land1(out_of_range="wall", wall_strength=50.0)
    xi = torch.tensor([[10.2], [-0.1], [5.0]], dtype=torch.float64)
    inside = L.check_range(xi, 1)
    assert inside.tolist() == [False, False, True]
    L.deposit(xi, 1.0, inside)
    assert float(L.S.sum()) == pytest.approx(1.0) and float(L.H.sum()) == 1.0
    g = L.gradient(xi)[:, 0]
    assert float(g[0]) == pytest.approx(2 * 50.0 * 0.2)  # S is flat at the edge here: wall only
    assert float(g[1]) == pytest.approx(-2 * 50.0 * 0.1)


def test_outside_the_grid_only_an_inward_slope_of_s_is_kept():
    # S = 3x along the first axis.  Below its lower edge the slope would push the
    # walker further out (force −∂S/∂x < 0): dropped, only the wall acts.  Above the
    # upper edge the same slope pushes back in: kept, added to the wall.
    for L in (land1(out_of_range="wall", wall_strength=50.0), land2(out_of_range="wall", wall_strength=50.0)):
        ax = L.grid.axes[0]
        L.S += (3.0 * ax.centres()).reshape([-1] + [1] * (L.grid.ndim - 1))
        rest = [0.5] * (L.grid.ndim - 1)
        xi = torch.tensor([[ax.lower - 0.1] + rest, [ax.upper + 0.2] + rest, [(ax.lower + ax.upper) / 2] + rest],
                          dtype=torch.float64)
        g = L.gradient(xi)[:, 0]
        assert float(g[0]) == pytest.approx(-2 * 50.0 * 0.1)
        assert float(g[1]) == pytest.approx(3.0 + 2 * 50.0 * 0.2)
        assert float(g[2]) == pytest.approx(3.0)
        # Reversed slope: now the lower side keeps it and the upper side drops it.
        L.S.neg_()
        g = L.gradient(xi)[:, 0]
        assert float(g[0]) == pytest.approx(-3.0 - 2 * 50.0 * 0.1)
        assert float(g[1]) == pytest.approx(2 * 50.0 * 0.2)


def test_nan_cv_is_out_of_range():
    L = land1()
    with pytest.raises(OutOfGridError, match="walker 0"):
        L.check_range(torch.tensor([[float("nan")]], dtype=torch.float64), 3)


def test_shift_to_zero_and_unvisited_nan():
    L = land1()
    L.deposit(torch.tensor([[2.0], [7.0]], dtype=torch.float64), 1.0)
    L.S += 5.0
    sh = L.shifted()
    vis = L.visited()
    assert torch.isnan(sh[~vis]).all()
    assert float(torch.nan_to_num(sh, nan=1e9).min()) == 0.0
    L.shift_to_zero()
    assert float(L.S[vis].min()) == 0.0


def test_merge_mean_and_sum():
    a, b = land1(), land1()
    a.deposit(torch.tensor([[2.0]], dtype=torch.float64), 1.0)
    b.deposit(torch.tensor([[8.0]], dtype=torch.float64), 3.0)
    m = ps.Landscape.merge([a, b], "mean")
    s = ps.Landscape.merge([a, b], "sum")
    assert torch.allclose(m.S, (a.S + b.S) / 2) and torch.allclose(s.S, a.S + b.S)
    assert float(m.H.sum()) == 2.0
    with pytest.raises(ValueError, match="how: must be one of 'mean', 'sum'"):
        ps.Landscape.merge([a, b], "max")
    with pytest.raises(ValueError, match="share one grid"):
        ps.Landscape.merge([a, land2()])


def test_state_dict_roundtrip_and_grid_mismatch():
    a = land2()
    a.deposit(torch.tensor([[0.1, 1.0]], dtype=torch.float64), 2.0)
    b = land2()
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.S, b.S) and torch.equal(a.H, b.H)
    with pytest.raises(ValueError, match="grid differs"):
        land1().load_state_dict(a.state_dict())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="x", lower=1.0, upper=1.0, bins=10), r"x\.lower: must be < x\.upper"),
        (dict(name="x", lower=2.0, upper=1.0, bins=10), r"x\.lower: must be < x\.upper"),
        (dict(name="x", lower=float("nan"), upper=1.0, bins=10), r"x\.lower: must be a finite real number"),
        (dict(name="x", lower=0.0, upper=float("inf"), bins=10), r"x\.upper: must be a finite real number"),
        (dict(name="x", lower=0.0, upper=1.0, width=0.0), r"x\.width: must be > 0"),
        (dict(name="x", lower=0.0, upper=1.0, width=-0.1), r"x\.width: must be > 0"),
        (dict(name="x", lower=0.0, upper=1.0, width=0.3), r"x\.width: \(upper - lower\)/width must be an integer"),
        (dict(name="x", lower=0.0, upper=1.0, bins=0), r"x\.bins: must be a positive integer"),
        (dict(name="x", lower=0.0, upper=1.0, bins=2), r"x\.bins: must be >= 3"),
        (dict(name="x", lower=0.0, upper=1.0), r"x\.bins: give exactly one of bins or width"),
        (dict(name="1x", lower=0.0, upper=1.0, bins=5), r"axis name: must be an identifier"),
    ],
)
def test_axis_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ps.Axis(**kwargs)


def test_landscape_bad_arguments():
    ax = [ps.Axis("x", 0.0, 1.0, bins=10)]
    with pytest.raises(ValueError, match="sigma: must be > 0"):
        ps.Landscape(ax, sigma=0.0)
    with pytest.raises(ValueError, match=r"sigma: must be a scalar or one value per axis \(1\)"):
        ps.Landscape(ax, sigma=[1.0, 2.0])
    with pytest.raises(ValueError, match="out_of_range: must be one of 'raise', 'wall'"):
        ps.Landscape(ax, out_of_range="wrap")
    with pytest.raises(ValueError, match="edge: must be one of 'reflect', 'truncate'"):
        ps.Landscape(ax, edge="mirror")
    with pytest.raises(ValueError, match=r"xi: must have shape \[W, 1\]"):
        ps.Landscape(ax).deposit(torch.zeros(3, 2, dtype=torch.float64), 1.0)


def test_default_wall_strength_is_one_over_width_squared():
    L = ps.Landscape([ps.Axis("x", 0.0, 1.0, bins=10)], out_of_range="wall")
    assert L.wall_strength == [pytest.approx(1 / 0.1**2)]
    assert math.isclose(L.walls[1].at, 1.0)


@pytest.mark.parametrize("bins", [3, 4, 9])
def test_potential_is_the_function_whose_gradient_the_walkers_feel(bins):
    """Grid.potential: on one axis its derivative (central differences of step 1e-6) equals
    interpolate_gradient to 1e-7 everywhere, beyond the outer centres and the edges too; on two axes it is a
    potential (the circulation around small loops vanishes to 1e-6), while the interpolated
    gradient is not quite one (control: its circulation on a random S is ≥ 1e-3); a constant
    S gives a constant Φ."""
    g = torch.Generator().manual_seed(bins)
    grid = ps.Grid([ps.Axis("x", 0.0, 1.0, bins=bins)])
    s = torch.randn(bins, dtype=torch.float64, generator=g)
    x = torch.rand(500, 1, dtype=torch.float64, generator=g) * 1.2 - 0.1  # beyond the edges too
    num = (grid.potential(s, x + 1e-6) - grid.potential(s, x - 1e-6)) / 2e-6
    assert torch.allclose(num, grid.interpolate_gradient(s, x)[:, 0], atol=1e-7, rtol=0)

    grid2 = ps.Grid([ps.Axis("x", 0.0, 1.0, bins=bins), ps.Axis("y", 0.0, 2.0, bins=5)])
    s2 = torch.randn(bins, 5, dtype=torch.float64, generator=g)
    assert torch.allclose(grid2.potential(torch.full_like(s2, 3.0), torch.rand(7, 2, dtype=torch.float64)),
                          torch.full((7,), 3.0, dtype=torch.float64))

    def circulation(field, centre, r=0.02, n=2000):
        th = torch.linspace(0, 2 * math.pi, n + 1, dtype=torch.float64)[:-1]
        p = torch.stack([centre[0] + r * torch.cos(th), centre[1] + r * torch.sin(th)], 1)
        dp = torch.stack([-torch.sin(th), torch.cos(th)], 1) * r * 2 * math.pi / n
        return float((field(p) * dp).sum())

    def grad_phi(p, h=1e-6):
        e = torch.eye(2, dtype=torch.float64) * h
        return torch.stack([(grid2.potential(s2, p + e[k]) - grid2.potential(s2, p - e[k])) / (2 * h)
                            for k in range(2)], 1)

    centres = [(0.5 / bins + 0.03, 0.45), (0.5, 1.0), (1 - 0.5 / bins - 0.03, 1.55)]
    assert max(abs(circulation(grad_phi, c)) for c in centres) < 1e-6
    assert max(abs(circulation(lambda p: grid2.interpolate_gradient(s2, p), c)) for c in centres) > 1e-3


def test_bin_log_volume_of_a_linear_landscape():
    """For S = a·x + b·y the potential is S itself, and the bin mean of e^S is exact:
    e^{S(centre)}·Π sinh(a_k w_k/2)/(a_k w_k/2); the midpoint rule with 64 points per axis
    meets it to 1e-4.  Control: the centre values alone miss it by ln(sinh(z)/z) ≈ 0.04."""
    grid = ps.Grid([ps.Axis("x", 0.0, 2.0, bins=8), ps.Axis("y", -1.0, 1.0, bins=5)])
    x, y = (c.to(torch.float64) for c in grid.centres())
    a, b = 2.0, -3.0
    s = a * x[:, None] + b * y[None, :]
    exact = s.clone()
    for k, slope in enumerate((a, b)):
        z = slope * (grid.axes[k].upper - grid.axes[k].lower) / grid.axes[k].bins / 2
        exact = exact + math.log(math.sinh(z) / z)
    got = grid.bin_log_volume(s, points=64)
    assert torch.allclose(got, exact, atol=1e-4, rtol=0)
    assert (s - exact).abs().max() > 0.03
