"""Builds the native kernels (cffi) at install time; everything else is in pyproject.toml."""

from setuptools import setup
from setuptools.command.build_ext import build_ext


class BuildNative(build_ext):
    """build_ext, with a clear message when there is no working C compiler."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            raise SystemExit(
                "bridge: building its native kernels (bridge/realm/native/kernels.c) needs a C compiler "
                f"such as gcc, and it failed: {exc}\n"
                "Install one (Debian/Ubuntu: apt-get install gcc) and run pip install again."
            ) from exc


# The extension uses only the stable ABI (it is built as _native.abi3.so), so one wheel serves every
# CPython from 3.10 on: tag it so.
setup(
    cffi_modules=["bridge/realm/native/_build.py:ffibuilder"],
    cmdclass={"build_ext": BuildNative},
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
