"""Element-wise preprocessing compiled to a per-column program.

Scalers, the imputer and the ordinal encoder act on each value independently, so a pipeline of
them becomes a small program: ``steps x columns`` op codes with four float64 parameters each.
The model kernels run it on every row as they read it (fused: no intermediate matrix).

scikit-learn applies those transformers in place on float32 input (``X -= mean_`` computes in
float64 and stores float32); ``round32[s]`` reproduces that rounding after step ``s`` so the
fused result is bit-identical. ``reject[s]`` says what the consumer of step ``s``'s output
refuses (bit 1: NaN, bit 2: infinity); ``reject[0]`` applies to the raw input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernels import kernel

NOOP, SUB, DIV, MUL, ADD, CLIP, IMPUTE, ORDINAL_ERROR, ORDINAL_VALUE, REFUSE_INF = range(10)
REJECT_NAN, REJECT_INF = 1, 2
# error kinds reported by kernels, see ``errors.describe``
ERR_NAN, ERR_INF, ERR_UNKNOWN_CATEGORY, ERR_STEP_INF, ERR_STEP_NAN = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class Program:
    """Per-column element-wise program; see the module docstring."""

    code: np.ndarray  # int32 [steps, d]
    params: np.ndarray  # float64 [steps, d, 4]
    round32: np.ndarray  # uint8 [steps]
    reject: np.ndarray  # uint8 [steps + 1]
    cats: np.ndarray  # float64 [total categories] for ordinal steps
    step_names: tuple[str, ...]
    affine_ops: np.ndarray  # int32 [steps]: the one op of each step if all are affine, else []
    affine_values: np.ndarray  # float64 [steps, d]

    @property
    def n_features(self) -> int:
        return int(self.code.shape[1])

    def args(self) -> tuple[np.ndarray, ...]:
        return self.code, self.params, self.round32, self.reject, self.cats

    def args_with_affine(self) -> tuple[np.ndarray, ...]:
        return (*self.args(), self.affine_ops, self.affine_values)


class ProgramBuilder:
    """Collects steps for ``n_features`` columns; ``build`` freezes them into a ``Program``."""

    def __init__(self, n_features: int) -> None:
        self.n_features = n_features
        self._codes: list[np.ndarray] = []
        self._params: list[np.ndarray] = []
        self._round: list[int] = []
        self._reject: list[int] = [0]
        self._names: list[str] = []
        self._cats: list[float] = []

    def add_step(self, name: str, code: np.ndarray, params: np.ndarray, *, round32: bool) -> None:
        self._codes.append(np.asarray(code, dtype=np.int32))
        self._params.append(np.asarray(params, dtype=np.float64))
        self._round.append(int(round32))
        self._reject.append(0)
        self._names.append(name)

    def add_uniform(self, name: str, op: int, a: np.ndarray | float, *, round32: bool) -> None:
        params = np.zeros((self.n_features, 4))
        params[:, 0] = a
        self.add_step(name, np.full(self.n_features, op), params, round32=round32)

    def add_categories(self, values: np.ndarray) -> tuple[int, int]:
        start = len(self._cats)
        self._cats.extend(np.asarray(values, dtype=np.float64).tolist())
        return start, len(values)

    def reject_input(self, flags: int) -> None:
        self._reject[0] |= flags

    def reject_after_last(self, flags: int) -> None:
        """Set what the consumer of the last step's output (or of the input) refuses."""
        self._reject[-1] |= flags

    @property
    def n_steps(self) -> int:
        return len(self._codes)

    def build(self) -> Program:
        d = self.n_features
        steps = len(self._codes)
        code = np.zeros((steps, d), dtype=np.int32)
        params = np.zeros((steps, d, 4))
        for s in range(steps):
            code[s] = self._codes[s]
            params[s] = self._params[s]
        affine_ops, affine_values = _affine_form(code, params)
        return Program(
            affine_ops=affine_ops,
            affine_values=affine_values,
            code=code,
            params=params,
            round32=np.asarray(self._round, dtype=np.uint8),
            reject=np.asarray(self._reject, dtype=np.uint8),
            cats=np.asarray(self._cats if self._cats else [0.0], dtype=np.float64),
            step_names=tuple(self._names),
        )


def _affine_form(code: np.ndarray, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Steps that each apply one of SUB/DIV/MUL/ADD to every column (NOOP columns get the
    identity value) -> ``(ops, values)``; empty when the program is anything else."""
    steps, d = code.shape
    empty = (np.zeros(0, dtype=np.int32), np.zeros((0, d)))
    ops = np.zeros(steps, dtype=np.int32)
    values = np.zeros((steps, d))
    for s in range(steps):
        kinds = set(np.unique(code[s]).tolist()) - {NOOP}
        if len(kinds) != 1 or not kinds <= {SUB, DIV, MUL, ADD}:
            return empty
        ops[s] = kinds.pop()
        identity = 1.0 if ops[s] in (DIV, MUL) else 0.0
        values[s] = np.where(code[s] == NOOP, identity, params[s, :, 0])
    return (ops, values) if steps else empty


@kernel()
def affine_rows(
    X: np.ndarray, ops: np.ndarray, values: np.ndarray, round32: np.ndarray, out: np.ndarray
) -> bool:
    """Apply an all-affine program to every row into ``out [n, d]`` float64, one simple loop
    per step (vectorized).

    Returns whether every input and output value is finite; when one is not, callers rerun
    ``apply_program`` for exact checks and messages."""
    _widen(X, out)
    for s in range(ops.shape[0]):
        # one small kernel per op: LLVM vectorizes each, not a loop holding all four
        if ops[s] == SUB:
            _sub(out, values[s])
        elif ops[s] == DIV:
            _div(out, values[s])
        elif ops[s] == MUL:
            _mul(out, values[s])
        else:
            _add(out, values[s])
        if round32[s]:
            _round32(out)
    return all_finite(X) and all_finite(out)


# Explicit loops, not ``a -= v`` / ``out[:] = X``: numba's array expressions bring its
# broadcasting checks, whose error messages compile numba's string formatting into every
# caller (~30% of a linear model's first compile); these loops vectorize the same.
@kernel()
def _widen(X: np.ndarray, out: np.ndarray) -> None:
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            out[i, j] = X[i, j]


@kernel()
def _sub(a: np.ndarray, v: np.ndarray) -> None:
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            a[i, j] -= v[j]


@kernel()
def _div(a: np.ndarray, v: np.ndarray) -> None:
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            a[i, j] /= v[j]


@kernel()
def _mul(a: np.ndarray, v: np.ndarray) -> None:
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            a[i, j] *= v[j]


@kernel()
def _add(a: np.ndarray, v: np.ndarray) -> None:
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            a[i, j] += v[j]


@kernel()
def _round32(a: np.ndarray) -> None:
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            a[i, j] = np.float64(np.float32(a[i, j]))


@kernel(fastmath={"reassoc"})
def all_finite(a: np.ndarray) -> bool:
    # x * 0 is NaN exactly for NaN and infinity; reassociation only lets the sum vectorize
    acc = 0.0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            acc += np.float64(a[i, j]) * 0.0
    return acc == acc


@kernel()
def _check(x: float, flags: int) -> int:
    if flags == 0:
        return 0
    if x != x:
        return 1 if flags & REJECT_NAN else 0
    if (flags & REJECT_INF) and (x == np.inf or x == -np.inf):
        return 2
    return 0


@kernel()
def _ordinal(x: float, p: np.ndarray, cats: np.ndarray) -> tuple[float, bool]:
    start = int(p[0])
    count = int(p[1])
    for i in range(count):
        c = cats[start + i]
        if c == x:
            return float(i), True
        if c != c and x != x:
            return p[3], True
    return p[2], False


@kernel()
def apply_program(  # noqa: C901 (one loop nest: helpers would sit in the hot loop)
    X: np.ndarray,
    row: int,
    code: np.ndarray,
    params: np.ndarray,
    round32: np.ndarray,
    reject: np.ndarray,
    cats: np.ndarray,
    buf: np.ndarray,
) -> int:
    """Transform ``X[row]`` into ``buf``; return -1, or ``8 * column + error kind``."""
    d = X.shape[1]
    steps = code.shape[0]
    for j in range(d):
        x: float = np.float64(X[row, j])  # float() keeps float32: a second copy of _check, _ordinal
        bad = _check(x, reject[0])
        if bad:
            return 8 * j + bad
        for s in range(steps):
            op = code[s, j]
            if op == SUB:
                x = x - params[s, j, 0]
            elif op == DIV:
                x = x / params[s, j, 0]
            elif op == MUL:
                x = x * params[s, j, 0]
            elif op == ADD:
                x = x + params[s, j, 0]
            elif op == CLIP:
                if x < params[s, j, 0]:
                    x = params[s, j, 0]
                elif x > params[s, j, 1]:
                    x = params[s, j, 1]
            elif op == IMPUTE:
                if x != x:
                    x = params[s, j, 0]
            elif op == REFUSE_INF:
                if x == np.inf or x == -np.inf:
                    return 8 * j + ERR_INF
            elif op == ORDINAL_ERROR or op == ORDINAL_VALUE:
                x, known = _ordinal(x, params[s, j], cats)
                if not known and op == ORDINAL_ERROR:
                    return 8 * j + ERR_UNKNOWN_CATEGORY
            if round32[s]:
                x = np.float64(np.float32(x))
            bad = _check(x, reject[s + 1])
            if bad:
                return 8 * j + (ERR_STEP_NAN if bad == ERR_NAN else ERR_STEP_INF)
        buf[j] = x
    return -1
