"""The BLAS a PyTorch peer actually loaded, for bench/train and bench/lm's torch_peer.py.

Debian's torch is built against the generic libblas.so.3 interface and uses whichever library
the loader finds, so the peers report it beside their timings (see bench/support/OpenBlas.ts).
"""


def blas_info():
    """'openblas', 'mkl', 'blis', 'reference' or 'unknown', read from this process's mappings."""
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return "unknown"
    for marker, name in (("openblas", "openblas"), ("libmkl", "mkl"), ("blis", "blis"), ("/blas/libblas.so", "reference")):
        if marker in maps:
            return name
    return "unknown"
