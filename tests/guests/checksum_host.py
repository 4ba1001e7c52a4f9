"""Host function for the test guests: a checksum over a guest byte range."""

from typing import Annotated

import numpy as np
from numpy.typing import NDArray

from bridge import HostFunctions, In, u64, usize

host = HostFunctions()


@host.function
def checksum(data: Annotated[NDArray[np.uint8], In("n")], n: usize) -> u64:
    return int(data.sum(dtype=np.uint64))
