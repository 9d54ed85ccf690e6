"""Process-wide runtime concerns: threading layer, thread count, fork, cache.

Every parallel kernel launch in fastnorm goes through :func:`call_parallel`,
which makes the launch safe and efficient inside a multi-threaded service:

* **One parallel region at a time.**  Numba's ``workqueue`` layer aborts the
  process when two threads launch parallel kernels at once, and under
  ``omp`` concurrent launches each start a thread team and oversubscribe the
  cores.  A process-wide lock is taken without blocking; a caller that finds
  it busy runs the single-threaded twin of the kernel (compiled from the
  same body: bit-identical results).
* **Fork.**  A child forked from a process that has loaded GNU OpenMP dies
  on its first parallel region, so such a child runs serial kernels only.
* **Thread count.**  :func:`set_num_threads` is process-wide (Numba's own
  setting is per thread) and is applied by every launch.
* **Cache.**  Kernels are cached on disk (``cache=True``).  Writes of the
  cache index are serialized between processes (a concurrent cold start of
  several processes could otherwise map one signature to another's machine
  code), entries are stamped with the hash of every kernel source (Numba's
  own stamp covers only the defining file), and a cache that cannot be read
  or written costs compile time, never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import tempfile
import threading
import warnings

import numba
from numba.core import caching
from numba.core import config as _numba_config

__all__ = [
    "call_parallel",
    "get_num_threads",
    "set_num_threads",
    "threading_layer",
]

# --------------------------------------------------------------------------
# state

#: Guards the parallel section: one fastnorm parallel region at a time.
_lock = threading.Lock()
#: Guards _active, the number of fastnorm calls in call_parallel right now.
_count_lock = threading.Lock()
_active = 0
#: Serializes layer detection (first call) with set_num_threads.
_init_lock = threading.Lock()

_initialized = False
#: Name of the threading layer in use ('omp', 'tbb', 'workqueue') or None.
_layer: str | None = None
#: True when no parallel region may run in this process (no layer could be
#: loaded, or a child forked after GNU OpenMP was loaded).
_serial_only = False
#: Value set by set_num_threads(); None leaves Numba's per-thread setting.
_num_threads: int | None = None
#: Per thread: the Numba thread count last applied by call_parallel.
_tls = threading.local()
#: True when no cache directory is writable (kernels compiled in every process).
_no_cache = False


def _initialize() -> None:
    """Load Numba's threading layer (without running anything) and record it."""
    global _initialized, _layer, _serial_only
    with _init_lock:
        if _initialized:
            return
        try:
            numba.get_num_threads()  # loads the layer (numba's _launch_threads)
            _layer = numba.threading_layer()
        except (ValueError, RuntimeError):  # "No threading layer could be loaded"
            _layer = None
            _serial_only = True
        _initialized = True


def call_parallel(parallel, serial, *args):
    """Run a parallel kernel; every parallel launch in fastnorm comes here.

    Parameters
    ----------
    parallel : numba dispatcher
        The ``parallel=True`` kernel.
    serial : numba dispatcher
        The kernel's single-threaded twin: same arguments, bit-identical
        results.
    *args
        The kernel arguments.

    Returns
    -------
    object
        Whatever the kernel returns.

    Notes
    -----
    Only one thread runs a fastnorm parallel region at a time (Numba's
    ``workqueue`` layer aborts on concurrent launches; ``omp`` oversubscribes
    the cores).  While another fastnorm call is in progress a caller runs
    ``serial`` instead.
    """
    if not _initialized:
        _initialize()
    if _serial_only:
        return serial(*args)
    n = _num_threads
    if n == 1:
        return serial(*args)
    global _active
    with _count_lock:
        _active += 1
        crowded = _active > 1
    try:
        # Several callers at once: each runs single-threaded, which keeps the
        # cores busy without thread teams competing for them (measured best).
        if crowded:
            return serial(*args)
        if not _lock.acquire(False):
            return serial(*args)
        try:
            # Numba's thread count is per thread: apply ours in this one.
            if n is not None and getattr(_tls, "applied", None) != n:
                numba.set_num_threads(n)
                _tls.applied = n
            return parallel(*args)
        finally:
            _lock.release()
    finally:
        with _count_lock:
            _active -= 1


# --------------------------------------------------------------------------
# public knobs


def threading_layer() -> str | None:
    """The Numba threading layer fastnorm's parallel kernels use.

    Returns
    -------
    str or None
        ``'omp'``, ``'tbb'`` or ``'workqueue'`` (chosen by Numba, or forced
        with ``NUMBA_THREADING_LAYER``), or None when no layer could be
        loaded and every kernel runs single-threaded.

    Notes
    -----
    Loads the layer if no parallel kernel has run yet (a few ms, no
    threads started).  In a child forked after GNU OpenMP was loaded the
    layer is still reported, but kernels run single-threaded there.
    """
    if not _initialized:
        _initialize()
    return _layer


def get_num_threads() -> int:
    """Number of threads a fastnorm parallel kernel uses.

    Returns
    -------
    int
        The value given to :func:`set_num_threads`, 1 where kernels run
        single-threaded (forked OpenMP child, no threading layer), else
        Numba's default ``NUMBA_NUM_THREADS``.
    """
    if not _initialized:
        _initialize()
    if _serial_only:
        return 1
    return _num_threads if _num_threads is not None else _numba_config.NUMBA_NUM_THREADS


def set_num_threads(n: int | None) -> None:
    """Set the number of threads of every fastnorm parallel kernel, process-wide.

    Parameters
    ----------
    n : int or None
        1 to ``numba.config.NUMBA_NUM_THREADS``; None restores the default
        (Numba's setting of the calling thread).

    Notes
    -----
    Unlike ``numba.set_num_threads``, which is per thread, this applies to
    calls from every thread.  Results are bit-identical for any ``n``.  A
    fastnorm call applies ``n`` to Numba's setting of its calling thread.
    """
    global _num_threads
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int or None, got {n!r}")
        limit = _numba_config.NUMBA_NUM_THREADS
        if not 1 <= n <= limit:
            raise ValueError(f"n must be between 1 and NUMBA_NUM_THREADS={limit}, got {n}")
    with _init_lock:
        _num_threads = n


# --------------------------------------------------------------------------
# fork


def _before_fork() -> None:
    # No fastnorm parallel region may be in flight while the process forks:
    # the child would inherit a thread pool marked busy.  Bounded wait.
    _lock.acquire(timeout=30)


def _after_fork_in_parent() -> None:
    with contextlib.suppress(RuntimeError):
        _lock.release()


def _after_fork_in_child() -> None:
    global _lock, _init_lock, _count_lock, _active, _serial_only
    _lock = threading.Lock()
    _count_lock = threading.Lock()
    _active = 0
    _init_lock = threading.Lock()
    _tls.__dict__.clear()
    # GNU OpenMP kills a forked child at its first parallel region once the
    # parent has loaded it; Numba loads one layer per process, so check it.
    try:
        layer = numba.threading_layer()
    except ValueError:  # no layer loaded in the parent: the child may load one
        return
    if layer == "omp" and _openmp_vendor() == "GNU":
        _serial_only = True


def _openmp_vendor() -> str:
    try:
        from numba.np.ufunc import omppool

        return getattr(omppool, "openmp_vendor", "GNU")
    except ImportError:
        return "GNU"


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


# --------------------------------------------------------------------------
# on-disk cache


class _NoCacheLocator(caching.InTreeCacheLocator):
    """Locator used only when no cache directory is writable; see _load_kernels."""

    def ensure_cache_path(self):
        pass

    @classmethod
    def from_function(cls, py_func, py_file):
        return cls(py_func, py_file)


def _writable(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def _cache_writable(kernels_dir: str) -> bool:
    """Whether Numba finds a writable cache directory (its locators, in order)."""
    if _numba_config.CACHE_DIR and _writable(_numba_config.CACHE_DIR):
        return True
    if _writable(os.path.join(kernels_dir, "__pycache__")):
        return True
    try:
        from numba.misc.appdirs import AppDirs

        user_dir = AppDirs(appname="numba", appauthor=False).user_cache_dir
    except Exception:
        return False
    return _writable(user_dir)


_cache_warned = False


def _warn_cache(exc: BaseException) -> None:
    global _cache_warned
    if not _cache_warned:
        _cache_warned = True
        warnings.warn(
            f"fastnorm: the Numba cache could not be used ({exc!r}); kernels are "
            "compiled in every process. Set NUMBA_CACHE_DIR to a writable directory.",
            RuntimeWarning,
            stacklevel=3,
        )


_flock_depth = threading.local()


@contextlib.contextmanager
def _file_lock(directory: str):
    """Exclusive inter-process lock on ``directory`` (no-op where unavailable).

    Reentrant within a thread: saving one kernel saves the kernels it calls,
    and a second ``flock`` on a new descriptor would wait for the first.
    """
    depth = getattr(_flock_depth, "n", 0)
    if depth:
        _flock_depth.n = depth + 1
        try:
            yield
        finally:
            _flock_depth.n = depth
        return
    try:
        import fcntl

        fd = os.open(os.path.join(directory, ".fastnorm-cache.lock"), os.O_RDWR | os.O_CREAT)
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _flock_depth.n = 1
        yield
    finally:
        _flock_depth.n = 0
        os.close(fd)  # closing releases the lock


def _kernel_sources(kernels_dir: str) -> list:
    """Names of the kernel source files, sorted."""
    return sorted(name for name in os.listdir(kernels_dir) if name.endswith(".py"))


def _kernel_sources_hash(kernels_dir: str) -> str:
    """sha256 of every kernel source file, in name order."""
    digest = hashlib.sha256()
    for name in _kernel_sources(kernels_dir):
        with open(os.path.join(kernels_dir, name), "rb") as f:
            digest.update(name.encode() + b"\0" + f.read())
    return digest.hexdigest()


def _guard_cache(cache, sources_hash: str) -> None:
    """Make one dispatcher's cache safe: fresh, locked writes, errors become misses.

    Numba stamps a cache entry with the hash of the file defining the kernel
    only, yet a kernel carries compiled copies of the helpers it calls from
    other files: after an upgrade or edit of ``common.py`` alone, ``rows.py``'s
    entries would still load with the old helpers.  Adding the hash of all
    kernel sources to the stamp makes any change invalidate every entry.
    """
    if getattr(cache, "_fastnorm_guarded", False):  # imported into several modules
        return
    cache._fastnorm_guarded = True
    cache_file = getattr(cache, "_cache_file", None)
    if cache_file is not None and hasattr(cache_file, "_source_stamp"):
        cache_file._source_stamp = (cache_file._source_stamp, sources_hash)
    save, load = cache.save_overload, cache.load_overload

    def save_overload(sig, data):
        try:
            # Numba's index update is read-modify-write: serialize it between
            # processes, or two signatures may end up sharing one data file.
            with _file_lock(cache.cache_path):
                save(sig, data)
        except Exception as exc:
            _warn_cache(exc)

    def load_overload(sig, target_context):
        try:
            return load(sig, target_context)
        except Exception as exc:  # unreadable or corrupt entry: recompile
            _warn_cache(exc)
            return None

    cache.save_overload = save_overload
    cache.load_overload = load_overload


def _load_kernels():
    """Import fastnorm._kernels so that a bad cache location is never an error.

    Numba raises at decoration time when no cache directory is writable
    (``NUMBA_CACHE_DIR``, the package's ``__pycache__`` and the per-user
    cache dir all read-only).  Then the kernels are imported with a locator
    that always succeeds and their caches are replaced by null caches.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    kernels_dir = os.path.join(here, "_kernels")
    global _no_cache
    writable = _cache_writable(kernels_dir)
    _no_cache = not writable
    saved = _numba_config.CACHE_LOCATOR_CLASSES
    if not writable:
        _numba_config.CACHE_LOCATOR_CLASSES = f"{__name__}._NoCacheLocator"
    try:
        kernels = importlib.import_module(f"{__package__}._kernels")
    finally:
        _numba_config.CACHE_LOCATOR_CLASSES = saved
    sources_hash = _kernel_sources_hash(kernels_dir)
    for source in _kernel_sources(kernels_dir):  # every module the hash covers
        name = source[: -len(".py")]
        if name == "__init__":
            module = kernels
        else:
            module = importlib.import_module(f"{kernels.__name__}.{name}")
        for obj in vars(module).values():
            cache = getattr(obj, "_cache", None)
            if not isinstance(cache, caching.Cache):
                continue
            if isinstance(cache._impl.locator, _NoCacheLocator):
                obj._cache = caching.NullCache()
            else:
                _guard_cache(cache, sources_hash)
    return kernels


_load_kernels()


def cache_dir() -> str | None:
    """Directory holding fastnorm's compiled kernels, or None when uncached."""
    from ._kernels import rows

    cache = rows.rows_forward._cache
    return getattr(cache, "cache_path", None)
