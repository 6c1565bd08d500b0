"""Biases: values as specified and gradients equal to autograd of the values."""
import pytest
import torch

import physampler as ps


def autograd_gradient(bias, xi):
    x = xi.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(bias.value(x).sum(), x)
    return g


XI = torch.tensor([[0.2, 3.0], [1.7, -1.0], [2.5, 0.4], [-0.3, 2.2]], dtype=torch.float64)


@pytest.mark.parametrize(
    "bias",
    [
        ps.QuadraticWall(0, 1.5, 40.0, "upper"),
        ps.QuadraticWall(1, 0.0, 7.0, "lower"),
        ps.LinearWall(0, 0.0, 3.0, "lower"),
        ps.LinearWall(1, 2.0, 2.5, "upper"),
        ps.HarmonicRestraint(1, 0.5, 4.0),
    ],
)
def test_bias_gradient_equals_autograd(bias):
    assert torch.allclose(bias.gradient(XI), autograd_gradient(bias, XI), atol=1e-12)


def test_quadratic_wall_values_p1_eq6():
    w = ps.QuadraticWall(0, 1.5, 40.0, "upper")
    assert w.value(XI).tolist() == pytest.approx([0.0, 40.0 * 0.2**2, 40.0 * 1.0**2, 0.0])
    lo = ps.QuadraticWall(1, 0.0, 7.0, "lower")
    assert lo.value(XI).tolist() == pytest.approx([0.0, 7.0, 0.0, 0.0])


def test_grid_bias_interpolates_and_differentiates():
    grid = ps.Grid([ps.Axis("a", -1.0, 3.0, bins=40), ps.Axis("b", -2.0, 4.0, bins=30)])
    a, b = grid.centres()
    A, B = torch.meshgrid(a, b, indexing="ij")
    gb = ps.GridBias(grid, 0.5 * A * B + A**2)
    g = gb.gradient(XI[:3])
    exact = torch.stack([0.5 * XI[:3, 1] + 2 * XI[:3, 0], 0.5 * XI[:3, 0]], dim=1)
    assert torch.allclose(g, exact, atol=1e-11)
    with pytest.raises(ValueError, match=r"values: must have the grid's shape \[40, 30\]"):
        ps.GridBias(grid, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="values: must be finite"):
        ps.GridBias(grid, torch.full((40, 30), float("nan")))


def test_bias_bad_arguments():
    with pytest.raises(ValueError, match="side: must be one of 'upper', 'lower'"):
        ps.QuadraticWall(0, 1.0, 1.0, "left")
    with pytest.raises(ValueError, match="strength: must be > 0"):
        ps.LinearWall(0, 1.0, 0.0, "upper")
    with pytest.raises(ValueError, match="axis: must be an integer >= 0"):
        ps.HarmonicRestraint(-1, 0.0, 1.0)
