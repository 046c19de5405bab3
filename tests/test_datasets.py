"""Tests for ngvi_lit.datasets: the shipped tables, their provenance, and the synthetic mixture."""
import numpy as np
import pytest
from ngvi_lit.datasets import load_iris, load_diabetes, load_breast_cancer, synthetic_mixture


@pytest.mark.parametrize('load, shape, words', [(load_iris, (150, 4), ('Fisher', 'BSD', 'CC BY 4.0')),
                                               (load_diabetes, (442, 10), ()), (load_breast_cancer, (569, 30), ())])
def test_shipped_tables_load_with_provenance(load, shape, words):
    d = load()
    assert d.shape == shape and d.y.shape == (shape[0],) and np.isfinite(d.X).all() and d.description
    assert all(w in d.description for w in words)


def test_iris_species_balanced():
    assert np.bincount(load_iris().y.astype(int)).tolist() == [50, 50, 50]


def test_synthetic_mixture_weights_and_means():
    X, z, means = synthetic_mixture(np.random.default_rng(0), N=20_000)
    assert X.shape == (20_000, 2) and means.shape == (3, 2)
    props = np.bincount(z, minlength=3) / len(z)
    assert np.abs(props - [.5, .3, .2]).max() < 4 * np.sqrt(.25 / len(z))
    assert max(np.abs(X[z == k].mean(0) - means[k]).max() for k in range(3)) < .05
    with pytest.raises(TypeError, match='`rng`'): synthetic_mixture(0)


def test_svi_still_exports_the_loaders():
    import ngvi_lit.svi as svi, ngvi_lit.datasets as ds
    assert svi.load_iris is ds.load_iris and svi.synthetic_mixture is ds.synthetic_mixture


def test_digits_shipped_compressed_with_attribution():
    from ngvi_lit.datasets import load_digits
    g = load_digits()
    assert g.shape == (1797, 64) and g.y.shape == (1797,) and set(np.unique(g.y)) == set(range(10))
    assert g.X.min() == 0 and g.X.max() == 16 and np.all(g.X == np.rint(g.X))
    assert all(w in g.description for w in ('Alpaydin', 'CC BY 4.0', 'UCI'))
