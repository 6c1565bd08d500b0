"""Structural CVs: Steinhardt Q6 and R_g against independent values; gradients vs finite differences."""
import math

import numpy as np
import pytest
import torch
from scipy.special import sph_harm_y

from physampler import CVSet
from physampler.order_parameters import RadiusOfGyration, Steinhardt
from physampler.systems.lennard_jones import icosahedron13, random_cluster


def shell(vectors):
    return torch.tensor(np.vstack([np.zeros((1, 3)), np.asarray(vectors, dtype=np.float64)]))[None]


def test_harmonics_equal_scipy():
    d = np.random.default_rng(0).normal(size=(200, 3))
    d[0] = [0, 0, 1.0]  # the pole, where angle-based formulas are singular
    re, im = Steinhardt(6).harmonics(torch.tensor(d))
    r = np.linalg.norm(d, axis=1)
    theta, phi = np.arccos(d[:, 2] / r), np.arctan2(d[:, 1], d[:, 0])
    for m in range(7):
        y = sph_harm_y(6, m, theta, phi)
        assert np.allclose(re[m].numpy(), y.real, atol=1e-13) and np.allclose(im[m].numpy(), y.imag, atol=1e-13)


def test_q6_perfect_shells():
    """Steinhardt et al. (1983) Table I: fcc 0.57452, bcc 0.62854, sc 0.35355, icosahedron 0.66332."""
    a = 1.1
    s = a / math.sqrt(2)
    fcc = [[i * s, j * s, 0] for i in (-1, 1) for j in (-1, 1)] + [[i * s, 0, j * s] for i in (-1, 1) for j in (-1, 1)] \
        + [[0, i * s, j * s] for i in (-1, 1) for j in (-1, 1)]
    # The 13-atom cuboctahedron: its 24 edges are also fcc nearest-neighbour directions.
    assert float(Steinhardt(6)(shell(fcc))) == pytest.approx(0.57452, abs=5e-5)
    sc = [[a, 0, 0], [-a, 0, 0], [0, a, 0], [0, -a, 0], [0, 0, a], [0, 0, -a]]
    assert float(Steinhardt(6)(shell(sc))) == pytest.approx(0.35355, abs=5e-5)
    c = a / math.sqrt(3)
    bcc = [[i * c, j * c, k * c] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)]  # corners 1.27 apart
    assert float(Steinhardt(6, r_on=1.15, r_off=1.2)(shell(bcc))) == pytest.approx(0.62854, abs=5e-5)
    ico = icosahedron13(1.0)
    # Only centre–vertex bonds: the vertices are 1.05 apart, so put them out of reach by scaling the shell.
    far = np.vstack([ico[:1], ico[1:] * 0.5])  # vertex–vertex 0.526 < r_on: keep all, then remove the centre
    q = Steinhardt(6, r_on=0.51, r_off=0.515)(torch.tensor(far)[None])
    assert float(q) == pytest.approx(0.66332, abs=5e-5)


def q6_reference(x, r_cut):
    """Hard-cutoff Q6 straight from scipy's Y_lm (bonds at r < r_cut)."""
    bonds = [x[i] - x[j] for i in range(len(x)) for j in range(i + 1, len(x)) if np.linalg.norm(x[i] - x[j]) < r_cut]
    b = np.array(bonds)
    r = np.linalg.norm(b, axis=1)
    th, ph = np.arccos(b[:, 2] / r), np.arctan2(b[:, 1], b[:, 0])
    tot = sum(abs(sph_harm_y(6, m, th, ph).mean()) ** 2 for m in range(-6, 7))
    return math.sqrt(4 * math.pi / 13 * tot)


def test_q6_matches_hard_cutoff_reference_and_is_rotation_invariant():
    rng = np.random.default_rng(1)
    cv = Steinhardt(6, r_on=1.3, r_off=1.5)
    for _ in range(5):
        x = random_cluster(13, 1.6, rng)
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        if np.any((d > 1.3) & (d < 1.5)):
            continue  # the smooth weight differs from a hard cutoff only there
        assert float(cv(torch.tensor(x)[None])) == pytest.approx(q6_reference(x, 1.4), rel=1e-12)
    x = torch.tensor(random_cluster(13, 1.6, rng))[None]
    rot, _ = torch.linalg.qr(torch.tensor(rng.normal(size=(3, 3))))
    assert float(cv(x @ rot.T)) == pytest.approx(float(cv(x)), rel=1e-12)
    assert float(cv(x + 3.0)) == pytest.approx(float(cv(x)), rel=1e-12)


@pytest.mark.parametrize("cv", [Steinhardt(6), RadiusOfGyration()], ids=["q6", "rg"])
def test_gradient_matches_finite_differences(cv):
    rng = np.random.default_rng(2)
    x = torch.tensor(np.stack([random_cluster(13, 1.7, rng) for _ in range(3)]))
    val, g = cv.value_and_grad(x)
    h = 1e-6
    for w, i, k in [(0, 0, 0), (1, 7, 2), (2, 12, 1)]:
        xp, xm = x.clone(), x.clone()
        xp[w, i, k] += h
        xm[w, i, k] -= h
        fd = (float(cv(xp)[w]) - float(cv(xm)[w])) / (2 * h)
        assert float(g[w, i, k]) == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_batched_equals_single_and_radius_of_gyration():
    rng = np.random.default_rng(3)
    x = torch.tensor(np.stack([random_cluster(13, 1.7, rng) for _ in range(4)]))
    cvs = CVSet([RadiusOfGyration(), Steinhardt(6)])
    both = cvs.values(x)
    for w in range(4):
        assert torch.equal(cvs.values(x[w : w + 1])[0], both[w])
    xw = x[0].numpy()
    assert float(both[0, 0]) == pytest.approx(math.sqrt(((xw - xw.mean(0)) ** 2).sum(1).mean()), rel=1e-14)
    with pytest.raises(ValueError, match="r_on"):
        Steinhardt(6, r_on=1.5, r_off=1.3)
