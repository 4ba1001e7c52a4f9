"""cffi build script for the native kernels: `setup.py` runs it at install time (cffi_modules).

It compiles kernels.c into the extension module `bridge.realm._native`.
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]

ffibuilder = FFI()
ffibuilder.cdef((HERE / "kernels.h").read_text())
ffibuilder.set_source(
    "bridge.realm._native",
    '#include <stdint.h>\n#include "kernels.h"\n',
    # Relative to the project root, where setuptools runs the build.
    sources=[str((HERE / name).relative_to(ROOT)) for name in ("kernels.c", "threads.c")],
    include_dirs=[str(HERE.relative_to(ROOT))],
    # OpenMP only for its `simd` hints; threads come from our own pool (threads.c).
    extra_compile_args=["-O3", "-std=gnu11", "-fopenmp-simd", "-pthread"],
    extra_link_args=["-pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
