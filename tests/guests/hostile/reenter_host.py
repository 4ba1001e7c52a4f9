"""Host side of the reenter guest: `enter` calls back into the guest, which calls the host again."""

from typing import Annotated

import numpy as np
from numpy.typing import NDArray

from bridge import Context, HostFunctions, InOut, i32

host = HostFunctions()
TRAIL = 64


@host.function
def enter(ctx: Context, trail: Annotated[NDArray[np.uint32], InOut(TRAIL)], depth: i32) -> i32:
    below = ctx.call("descend", depth - 1)
    # The view was made before the nested call, which wrote the same array; it still writes the guest.
    trail[depth % TRAIL] += 1
    return int(below) + 1


@host.function
def leaf(trail: Annotated[NDArray[np.uint32], InOut(TRAIL)], depth: i32) -> i32:
    trail[0] += 1000
    return 1000
