"""``NumbaRuntime``: one compiled model behind the ``Runtime`` protocol."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from gateway.runtimes.inputs import as_float32_rows
from gateway.runtimes.numba import program as pg
from gateway.runtimes.numba.forest_direct import (
    DirectForest,
    forest_direct,
    forest_direct_parallel,
)
from gateway.runtimes.numba.onehot import onehot_expand

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.runtimes.numba.steps import OneHot


@dataclass(frozen=True)
class Kernel:
    """The final model's compiled function(s) and the arrays and scalars they take."""

    serial: Callable[..., Any]
    parallel: Callable[..., Any] | None
    parallel_rows: int  # batches of at least this many rows use ``parallel`` (0: never)
    args: tuple[Any, ...]  # arrays (or tuples of arrays) after the program's
    tail: tuple[Any, ...]
    has_proba: bool
    takes_affine: bool = False  # the kernel takes the program's affine form too
    scratch: tuple[tuple[Any, int], ...] = ()  # (dtype, width per row) of scratch arrays
    scratch_rows: bool = False  # pass scratch as [n, width] views (else flat, sliced inside)
    scratch_tuple_from: int = -1  # pass the views from this index on as one tuple (-1: none)
    direct: DirectForest | None = None  # trees: the same model for forest_direct


@dataclass(frozen=True)
class OneHotStage:
    program: pg.Program  # element-wise steps before the encoder
    spec: OneHot

    def args(self) -> tuple[Any, ...]:
        s = self.spec
        return (
            *self.program.args(),
            s.start,
            s.count,
            s.out_col,
            s.cats,
            s.ignore_unknown,
            s.n_out,
        )


_KIND = {
    pg.ERR_NAN: "is NaN and {model} does not accept missing values",
    pg.ERR_INF: "is infinite and {model} accepts finite values only",
    pg.ERR_UNKNOWN_CATEGORY: "is a category unseen in training and the encoder refuses unknowns",
    pg.ERR_STEP_INF: "becomes infinite after preprocessing (float32 overflow) and {model} "
    "accepts finite values only",
    pg.ERR_STEP_NAN: "becomes NaN after preprocessing and {model} does not accept missing values",
}


class NumbaRuntime:
    """A scikit-learn model compiled to flat arrays and ``@njit(nogil=True)`` kernels.

    Thread-safe: ``predict`` keeps no state between calls, and the kernels run without the GIL.
    Batches of ``kernel.parallel_rows`` rows or more run on numba's thread pool (trees only).
    """

    backend = "numba"

    def __init__(
        self,
        *,
        n_features: int,
        task: str,
        classes: np.ndarray | None,
        allows_nan: bool,
        program: pg.Program,
        kernel: Kernel,
        onehot: OneHotStage | None,
        model_name: str,
    ) -> None:
        self.n_features = n_features
        self.task = task
        self.classes = classes
        self.allows_nan = allows_nan
        self.model_name = model_name
        self._kernel = kernel
        self._onehot = onehot
        self.program = program  # kept for gateway.runtimes.numba.saved
        self._local = threading.local()  # per-thread scratch, see _scratch
        program_args = program.args_with_affine() if kernel.takes_affine else program.args()
        self._args = (*program_args, *kernel.args, *kernel.tail)
        self._onehot_args = onehot.args() if onehot is not None else ()

    @property
    def kernel(self) -> Kernel:
        return self._kernel

    @property
    def onehot(self) -> OneHotStage | None:
        return self._onehot

    def __repr__(self) -> str:
        return f"NumbaRuntime({self.model_name}, n_features={self.n_features}, task={self.task})"

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        X = as_float32_rows(X, self.n_features)
        n = X.shape[0]
        if n == 0:
            return self._empty()
        Xk = X
        if self._onehot is not None:
            Xk, status = onehot_expand(X, *self._onehot_args)
            if status >= 0:
                raise ValueError(self._describe(status, X.shape[1], "input X"))
        kernel = self._kernel
        fn = kernel.serial
        if kernel.parallel is not None and 0 < kernel.parallel_rows <= n:
            fn = kernel.parallel
        values, labels, status = fn(Xk, *self._args, *self._scratch(n))
        if status >= 0:
            where = "input X" if self._onehot is None else "one-hot encoded X"
            raise ValueError(self._describe(status, Xk.shape[1], where))
        if self.classes is None:
            return {"predict": values[:, 0]}
        out = {"predict": self.classes.take(labels)}
        if kernel.has_proba:
            out["predict_proba"] = values
        return out

    def kernel_call(self, max_rows: int) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """The serial kernel and the arguments after ``X`` for batches of up to ``max_rows``
        rows (benchmarks time the kernel bare: ``predict`` minus it is the wrapper)."""
        return self._kernel.serial, (*self._args, *self._scratch(max_rows))

    def _scratch(self, n: int) -> tuple[np.ndarray, ...]:
        """This thread's scratch arrays for ``n`` rows, grown by doubling and then reused:
        kernels that allocated megabyte temporaries per call spent more time in page faults
        (glibc maps such blocks fresh each time) than in their matrix products."""
        spec = self._kernel.scratch
        if not spec:
            return ()
        rows = getattr(self._local, "rows", 0)
        if rows < n:
            rows = max(n, 2 * rows, 64)
            self._local.views_n = -1
            self._local.arrays = tuple(np.empty(rows * width, dtype) for dtype, width in spec)
            self._local.rows = rows
        arrays: tuple[np.ndarray, ...] = self._local.arrays
        if not self._kernel.scratch_rows:
            return arrays
        # C-contiguous [n, width] views made here: a slice-and-reshape inside numba is typed
        # as a non-contiguous ("A") array and every kernel downstream loses vectorization
        if getattr(self._local, "views_n", -1) != n:
            views = tuple(
                a[: n * width].reshape(n, width) for a, (_, width) in zip(arrays, spec, strict=True)
            )
            cut = self._kernel.scratch_tuple_from
            self._local.views = views if cut < 0 else (*views[:cut], views[cut:])
            self._local.views_n = n
        views_out: tuple[np.ndarray, ...] = self._local.views
        return views_out

    def _empty(self) -> dict[str, np.ndarray]:
        if self.classes is None:
            return {"predict": np.empty(0)}
        out = {"predict": self.classes[:0].copy()}
        if self._kernel.has_proba:
            out["predict_proba"] = np.empty((0, len(self.classes)))
        return out

    def _describe(self, status: int, d: int, where: str) -> str:
        kind = status % 8
        col = (status // 8) % d
        row = status // (8 * d)
        reason = _KIND.get(kind, "is invalid").format(model=self.model_name)
        return f"{where}: value at row {row}, column {col} {reason}"


_F32 = np.dtype(np.float32)
_I64 = np.dtype(np.int64)
_NO_LABELS = np.empty(0, dtype=np.int64)


class DirectForestRuntime(NumbaRuntime):
    """A tree ensemble with no preprocessing: ``forest_direct`` reads the float32 rows and
    writes outputs allocated here; checks that can be done at load are done at load."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        direct = self._kernel.direct
        assert direct is not None
        program: pg.Program = kwargs["program"]
        # the kernel's arguments between X and the outputs, as one tuple (one C-level splice
        # per call instead of six attribute reads)
        self._model_args = (
            direct.nodes,
            direct.values,
            direct.trees,
            direct.init,
            direct.spec(int(program.reject[0]), self.n_features),
            direct.divisor,
        )
        self._width = direct.n_classes or 1
        self._parallel_rows = self._kernel.parallel_rows or (1 << 62)
        self._row_shape = (self.n_features,)
        classes = self.classes
        self._labels_are_classes = (
            classes is not None
            and classes.dtype == np.int64
            and bool(np.array_equal(classes, np.arange(len(classes))))
        )

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        # what the kernel was compiled for, checked in as few attribute reads as possible (this
        # wrapper's own cost is most of a one-row call of a small forest): shape[1:] is (d,)
        # only for a 2-d array of d columns; one flags object read once
        if (
            type(X) is not np.ndarray
            or X.dtype is not _F32
            or X.shape[1:] != self._row_shape
            or not (flags := X.flags).c_contiguous
            or not flags.writeable
        ):
            X = as_float32_rows(X, self.n_features)
        n = X.shape[0]
        if n == 0:
            return self._empty()
        out = np.empty((n, self._width))
        classes = self.classes
        labels = np.empty(n, _I64) if classes is not None else _NO_LABELS  # positional: faster
        fn = forest_direct if n < self._parallel_rows else forest_direct_parallel
        status = fn(X, *self._model_args, out, labels)
        if status >= 0:
            raise ValueError(self._describe(status, X.shape[1], "input X"))
        if classes is None:
            return {"predict": out.reshape(n)}
        return {
            "predict": labels if self._labels_are_classes else classes.take(labels),
            "predict_proba": out,
        }

    def kernel_call(self, max_rows: int) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        out = np.empty((max_rows, self._width))
        labels = np.empty(max_rows, dtype=np.int64) if self.classes is not None else _NO_LABELS
        return forest_direct, (*self._model_args, out, labels)


def make_runtime(
    *, program: pg.Program, kernel: Kernel, onehot: OneHotStage | None, **kwargs: Any
) -> NumbaRuntime:
    """``DirectForestRuntime`` where ``forest_direct`` applies (a tree ensemble without
    preprocessing or categorical splits), else ``NumbaRuntime``."""
    cls = NumbaRuntime
    if kernel.direct is not None and program.code.shape[0] == 0 and onehot is None:
        cls = DirectForestRuntime
    return cls(program=program, kernel=kernel, onehot=onehot, **kwargs)
