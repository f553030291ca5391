"""Builds the optional C extension ipcrpc._native (futex + atomics for the shm
transport). optional=True: if it cannot be compiled (no compiler, no Python
headers), the package installs without it and the shm transport is
unavailable; everything else works. Metadata lives in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("ipcrpc._native", ["ipcrpc/_native.c"], optional=True, extra_compile_args=["-O2", "-Wall"])])
