"""Pure statistics: reference profiles, frozen bins, the numba binning kernel and the
distributions behind the drift p-values. numpy (and numba through ``kernels``) only: no
DuckDB, no files, no configuration."""
