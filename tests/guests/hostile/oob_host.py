"""Host side of the oob guest: one host function per way of declaring a guest range."""

from typing import Annotated

import numpy as np
from numpy.typing import NDArray

from bridge import Context, HostFunctions, In, Out, Ptr, Utf8, f64, i32, u32, u64, usize

host = HostFunctions()


@host.function
def checksum(data: Annotated[NDArray[np.uint8], In("n")], n: usize) -> u64:
    return int(data.sum(dtype=np.uint64))


@host.function
def fill(dst: Annotated[NDArray[np.uint8], Out("n")], n: usize, value: u32) -> None:
    dst[:] = value


@host.function
def sum_f64(xs: Annotated[NDArray[np.float64], In("n")], n: usize) -> f64:
    return float(xs.sum())


@host.function
def sum_grid(xs: Annotated[NDArray[np.float64], In("rows * cols")], rows: u32, cols: u32) -> f64:
    return float(xs.sum())


@host.function
def copy_u32(
    src: Annotated[NDArray[np.uint32], In("n")], dst: Annotated[NDArray[np.uint32], Out("n")], n: usize
) -> None:
    dst[:] = src


@host.function
def peek(ctx: Context, p: Ptr, n: usize) -> u32:
    return int(ctx.view(p, n, parameter="p").sum(dtype=np.uint64)) & 0xFFFFFFFF


@host.function
def head(xs: Annotated[NDArray[np.uint8], In("n")], n: i32) -> u32:
    return int(xs[0]) if n > 0 else 0


@host.function
def shout(text: Utf8) -> i32:
    return len(text.upper())
