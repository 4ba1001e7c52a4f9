"""Host side of host_spin.wat and twice.wat: `tick` counts its calls."""

from bridge import HostFunctions, i32

host = HostFunctions()
calls = [0]


@host.function
def tick() -> i32:
    calls[0] += 1
    return 1
