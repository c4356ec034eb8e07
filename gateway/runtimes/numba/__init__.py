"""The numba backend: scikit-learn models as flat arrays and ``@njit(nogil=True)`` kernels."""
