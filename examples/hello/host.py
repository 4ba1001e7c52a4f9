"""Host functions for examples/hello: a few lines of typed Python each."""

from typing import Annotated

import numpy as np
from numpy.typing import NDArray

from bridge import HostFunctions, In, Out, i64, usize

host = HostFunctions()


@host.function
def sum_i32(xs: Annotated[NDArray[np.int32], In("n")], n: usize) -> i64:
    return int(xs.sum(dtype=np.int64))


@host.function
def reverse_i32(
    src: Annotated[NDArray[np.int32], In("n")], dst: Annotated[NDArray[np.int32], Out("n")], n: usize
) -> None:
    dst[:] = src[::-1]
