"""Tests for ngvi_lit.sources: every source yields each row once per epoch, batch_stream's contract, and errors that name the argument, file, row and column."""
import numpy as np
import pytest
from ngvi_lit.sources import ArraySource, MemmapSource, ChunkSource, batch_stream, limit_blas_threads


def _data(n=203, d=3, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)), np.arange(float(n))


def _save(tmp_path, X, y, nx='X.npy', ny='y.npy'):
    np.save(tmp_path / nx, X); np.save(tmp_path / ny, y)
    return tmp_path / nx, tmp_path / ny


def _sources(tmp_path, X, y):
    px, py = _save(tmp_path, X, y)
    chunks = lambda: ((X[a:a + 37], y[a:a + 37]) for a in range(0, len(y), 37))
    return [ArraySource(X, y), MemmapSource(px, py, chunk_rows=64), ChunkSource(chunks, len(y), X.shape[1])]


@pytest.mark.parametrize('B', [1, 7, 32, 203, 1000])
def test_epoch_visits_every_row_once(tmp_path, B):
    X, y = _data()
    for s in _sources(tmp_path, X, y):
        got = list(s.batches(B, np.random.default_rng(2)))
        yc = np.concatenate([b[1] for b in got]); Xc = np.concatenate([b[0] for b in got])
        assert sorted(yc) == list(y) and np.array_equal(Xc, X[yc.astype(int)])
        assert all(b[0].dtype == float and b[1].dtype == float for b in got)


# ---------------------------------------------------------------- batch_stream

@pytest.mark.parametrize('B', [1, 10, 64, 500])
def test_batch_stream_epochs_are_passes(tmp_path, B):
    X, y = _data()
    for s in _sources(tmp_path, X, y):
        it = batch_stream(s, B, np.random.default_rng(1))
        k = -(-203 // min(B, 203))
        for _ in range(2):          # two consecutive passes, each a permutation of the rows
            yc = np.concatenate([next(it)[1] for _ in range(k)])
            assert sorted(yc) == list(y)


def test_batch_stream_iid_and_reproducible():
    X, y = _data()
    s = ArraySource(X, y)
    a = [next(it)[1] for it in [batch_stream(s, 20, np.random.default_rng(7), 'iid')] for _ in range(5)]
    b = [next(it)[1] for it in [batch_stream(s, 20, np.random.default_rng(7), 'iid')] for _ in range(5)]
    assert all(np.array_equal(u, v) for u, v in zip(a, b)) and all(len(np.unique(u)) == 20 for u in a)
    it = batch_stream(s, lambda t: 5 * (t + 1), np.random.default_rng(0), 'iid')
    assert [len(next(it)[1]) for _ in range(4)] == [5, 10, 15, 20]
    assert len(next(batch_stream(s, 10**6, np.random.default_rng(0), 'iid'))[1]) == 203   # capped at N


@pytest.mark.parametrize('bad', [0, -3, 2.5, True, None, '8'])
def test_batch_stream_bad_batch_size_is_named_at_call(bad):
    X, y = _data()
    with pytest.raises(ValueError, match='`batch_size`'):
        batch_stream(ArraySource(X, y), bad, np.random.default_rng(0))          # raised at the call, not at next()


@pytest.mark.parametrize('sampling', ['iid', 'epochs'])
@pytest.mark.parametrize('bad', [0, 2.5, None])
def test_batch_stream_schedule_returning_bad_size_names_batch_size_and_step(sampling, bad):
    X, y = _data()
    it = batch_stream(ArraySource(X, y), lambda t: 300 if t < 1 else bad, np.random.default_rng(0), sampling)
    next(it)
    with pytest.raises(ValueError, match=r'`batch_size`.*step t=1'):          # iid: was ZeroDivisionError for 0
        next(it)


def test_batch_stream_bad_sampling_and_iid_without_take():
    X, y = _data()
    with pytest.raises(ValueError, match='`sampling`'): batch_stream(ArraySource(X, y), 8, np.random.default_rng(0), 'shuffle')
    cs = ChunkSource(lambda: iter([(X, y)]), 203, 3)
    with pytest.raises(ValueError, match=r"`sampling`='iid'.*take"): batch_stream(cs, 8, np.random.default_rng(0), 'iid')
    with pytest.raises(ValueError, match='`source`'): batch_stream((X, y), 8, np.random.default_rng(0))
    with pytest.raises(TypeError, match='`rng`'): batch_stream(ArraySource(X, y), 8, 0.5)
    with pytest.raises(ValueError, match='`start`'): batch_stream(ArraySource(X, y), 8, 0, start=-1)


def test_batch_stream_empty_epoch_is_an_error():
    class Empty:
        n, dim = 5, 1
        def batches(self, b, rng): return iter(())
    with pytest.raises(ValueError, match='`source`.*no batch'):
        next(batch_stream(Empty(), 2, np.random.default_rng(0)))


# ---------------------------------------------------------------- MemmapSource files (issue 16)

def test_memmap_csv_is_named(tmp_path):
    X, y = _data(); _, py = _save(tmp_path, X, y)
    (tmp_path / 'X.csv').write_text('1,2,3\n4,5,6\n')
    with pytest.raises(ValueError, match=r'`path_X`: .*X\.csv is not a \.npy file'):
        MemmapSource(tmp_path / 'X.csv', py)
    (tmp_path / 'y.csv').write_text('1\n2\n')
    with pytest.raises(ValueError, match=r'`path_y`: .*y\.csv is not a \.npy file'):
        MemmapSource(tmp_path / 'X.npy', tmp_path / 'y.csv')
    (tmp_path / 'empty.npy').write_bytes(b'')
    with pytest.raises(ValueError, match=r'`path_X`: .*empty\.npy is not a \.npy file'):
        MemmapSource(tmp_path / 'empty.npy', py)


def test_memmap_truncated_is_named(tmp_path):
    X, y = _data(); px, py = _save(tmp_path, X, y)
    (tmp_path / 'Xcut.npy').write_bytes(px.read_bytes()[:3000])
    with pytest.raises(ValueError, match=r'`path_X`: .*Xcut\.npy is truncated: its header promises 203 rows of 3 float64 columns'):
        MemmapSource(tmp_path / 'Xcut.npy', py)
    (tmp_path / 'ycut.npy').write_bytes(py.read_bytes()[:500])
    with pytest.raises(ValueError, match=r'`path_y`: .*ycut\.npy is truncated: its header promises 203 float64 values'):
        MemmapSource(px, tmp_path / 'ycut.npy')


@pytest.mark.parametrize('arr, which, what', [
    (np.array([['a', 'b'], ['c', 'd']]), 'X', 'not numeric'),
    (np.ones((4, 2), complex), 'X', 'complex'),
    (np.ones(4), 'X', 'not 2-D'),
    (np.ones((4, 2, 2)), 'X', 'not 2-D'),
    (np.ones((0, 2)), 'X', 'empty'),
    (np.ones((4, 1)), 'y', 'not 1-D'),
    (np.array(['a', 'b', 'c', 'd']), 'y', 'not numeric'),
])
def test_memmap_bad_contents_are_named(tmp_path, arr, which, what):
    X, y = np.ones((4, 2)), np.ones(4)
    np.save(tmp_path / 'X.npy', arr if which == 'X' else X); np.save(tmp_path / 'y.npy', arr if which == 'y' else y)
    with pytest.raises(ValueError, match=rf'`path_{which}`: .*{which}\.npy .*{what}'):
        MemmapSource(tmp_path / 'X.npy', tmp_path / 'y.npy')


def test_memmap_length_mismatch_and_missing_file(tmp_path):
    px, py = _save(tmp_path, np.ones((4, 2)), np.ones(5))
    with pytest.raises(ValueError, match=r'`path_y`: .*5 targets .*4 rows'): MemmapSource(px, py)
    with pytest.raises(ValueError, match='`path_X`: no such file'): MemmapSource(tmp_path / 'nope.npy', py)


def test_memmap_integer_file_is_read_as_float(tmp_path):
    px, py = _save(tmp_path, np.arange(12, dtype=np.int32).reshape(6, 2), np.arange(6, dtype=np.int8))
    Xb, yb = next(MemmapSource(px, py).batches(6))
    assert Xb.dtype == float and np.array_equal(Xb, np.arange(12.).reshape(6, 2)) and yb.dtype == float


# ---------------------------------------------------------------- non-finite rows (issue 16)

def test_nan_in_memmap_names_file_row_and_column(tmp_path):
    X, y = _data(); X[150, 2] = np.nan; X[151, 0] = np.inf
    px, py = _save(tmp_path, X, y)
    src = MemmapSource(px, py, chunk_rows=64)          # constructing does not read the file
    with pytest.raises(ValueError, match=r'non-finite .*`path_X` \(.*X\.npy\): row\(s\) 150, 151 \(row 150: column\(s\) 2\)'):
        list(src.batches(16, np.random.default_rng(0)))
    with pytest.raises(ValueError, match=r'`path_X` \(.*X\.npy\): row\(s\) 150 .*column\(s\) 2'):
        src.take([3, 150, 9])


def test_nan_in_memmap_y_names_path_y(tmp_path):
    X, y = _data(); y[17] = np.nan
    px, py = _save(tmp_path, X, y)
    with pytest.raises(ValueError, match=r'`path_y` \(.*y\.npy\): row\(s\) 17'):
        for _ in batch_stream(MemmapSource(px, py, chunk_rows=32), 8, np.random.default_rng(0)): pass


def test_nan_in_array_source_found_at_construction():
    X, y = _data(); X[42, 1] = np.nan
    with pytest.raises(ValueError, match=r'`X`: row\(s\) 42 \(row 42: column\(s\) 1\)'): ArraySource(X, y)
    X, y = _data(); y[[3, 5, 7, 9, 11, 13, 15]] = np.inf
    with pytest.raises(ValueError, match=r'`y`: row\(s\) 3, 5, 7, 9, 11, \.\.\.'): ArraySource(X, y)


def test_nan_in_array_memmap_checked_per_batch(tmp_path):
    X, y = _data(); X[99, 0] = np.nan
    np.save(tmp_path / 'X.npy', X)
    src = ArraySource(np.load(tmp_path / 'X.npy', mmap_mode='r'), y)     # a memmap is not scanned up front
    with pytest.raises(ValueError, match=r'`X`: row\(s\) 99'):
        list(src.batches(50))


def test_nan_in_chunk_source_names_piece_and_row():
    X, y = _data(); X[80, 1] = np.nan
    chunks = lambda: ((X[a:a + 37], y[a:a + 37]) for a in range(0, 203, 37))
    with pytest.raises(ValueError, match=r'X of piece 2 of `chunks`: row\(s\) 80 \(row 80: column\(s\) 1\)'):
        list(ChunkSource(chunks, 203, 3).batches(10))


# ---------------------------------------------------------------- ChunkSource arguments, complex and masked X (issue 16)

@pytest.mark.parametrize('n, dim, name', [(0, 3, 'n'), (2.5, 3, 'n'), (-1, 3, 'n'), (10, 0, 'dim'), (10, 2.5, 'dim'), (10, None, 'dim')])
def test_chunk_source_names_n_and_dim(n, dim, name):
    with pytest.raises(ValueError, match=rf'^`{name}` must be an integer >= 1') as e:
        ChunkSource(lambda: iter(()), n, dim)
    assert 'batch_size' not in str(e.value)


def test_chunk_source_shape_and_count_errors():
    X, y = _data()
    with pytest.raises(ValueError, match='`dim` says 4'): list(ChunkSource(lambda: iter([(X, y)]), 203, 4).batches(10))
    with pytest.raises(ValueError, match='`n` says 200'): list(ChunkSource(lambda: iter([(X, y)]), 200, 3).batches(10))
    with pytest.raises(ValueError, match='`n` says 300'): list(ChunkSource(lambda: iter([(X, y)]), 300, 3).batches(10))
    with pytest.raises(ValueError, match='masked'):
        list(ChunkSource(lambda: iter([(np.ma.masked_invalid(X), y)]), 203, 3).batches(10))


def test_chunk_rows_is_named(tmp_path):
    px, py = _save(tmp_path, *_data())
    with pytest.raises(ValueError, match='`chunk_rows`'): MemmapSource(px, py, chunk_rows=0)


def test_complex_x_rejected():
    X, y = _data()
    with pytest.raises(ValueError, match=r'`X` has complex dtype complex128; a real array is required'):
        ArraySource(X + 0j, y)
    with pytest.raises(ValueError, match=r'`y` has complex dtype'): ArraySource(X, y + 1j)


def test_masked_x_rejected():
    X, y = _data()
    Xm = np.ma.masked_array(X, mask=np.zeros_like(X, bool)); Xm[4, 1] = np.ma.masked
    with pytest.raises(ValueError, match=r'`X` is a numpy masked array: fill the masked entries .* or drop the masked rows'):
        ArraySource(Xm, y)
    with pytest.raises(ValueError, match=r'`y` is a numpy masked array'): ArraySource(X, np.ma.masked_invalid(y))


def test_other_bad_arrays_named():
    X, y = _data()
    with pytest.raises(ValueError, match='`X` must be a 2-D array'): ArraySource(X.tolist(), y)
    with pytest.raises(ValueError, match='`X` must hold numbers'): ArraySource(X.astype(object), y)
    with pytest.raises(ValueError, match=r'`y` must have shape \(203,\)'): ArraySource(X, y[:-1])
    with pytest.raises(ValueError, match='`X` must have at least one row'): ArraySource(np.zeros((0, 2)), np.zeros(0))


def test_limit_blas_threads_returns_count():
    assert limit_blas_threads(1) >= 0


@pytest.mark.parametrize('sampling', ['epochs', 'iid'])
@pytest.mark.parametrize('B', [7, lambda t: 5 + t // 4])
def test_batch_stream_restarts_mid_epoch(sampling, B):
    "The stream from step `start` is the stream from 0 with `start` batches skipped: what a resumed run needs."
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((53, 2)), np.arange(53.)
    s = ArraySource(X, y)
    full = batch_stream(s, B, 123, sampling)
    ref = [next(full)[1] for _ in range(30)]
    for start in (0, 5, 8, 17):
        it = batch_stream(s, B, 123, sampling, start=start)
        assert all(np.array_equal(next(it)[1], r) for r in ref[start:])
