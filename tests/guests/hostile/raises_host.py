"""Host side of the raises guest: a host function that raises, as a buggy one would."""

from typing import Annotated

import numpy as np
from numpy.typing import NDArray

from bridge import HostFunctions, In, i32, usize

host = HostFunctions()


class HostBug(Exception):
    """A host function's own exception type (an Exception, not a KeyboardInterrupt)."""


@host.function
def explode(data: Annotated[NDArray[np.uint8], In("n")], n: usize, kind: i32) -> i32:
    if kind == 0:
        raise ValueError(f"cannot explode {n} bytes")
    if kind == 1:
        raise HostBug(f"checksum {int(data.sum())} looks wrong")
    return int(data.sum())
