"""Host side of the bigmem guest: reads and writes guest bytes at any address, above 4 GiB too."""

from typing import Annotated

import numpy as np
from numpy.typing import NDArray

from bridge import HostFunctions, InOut, u32, u64, usize

host = HostFunctions()


@host.function
def sum_and_fill(data: Annotated[NDArray[np.uint8], InOut("n")], n: usize, value: u32) -> u64:
    total = int(data.sum(dtype=np.uint64))
    data[:] = value
    return total
