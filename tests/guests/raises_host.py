"""A host function with a bug, to check how its exception reaches the user."""

from bridge import HostFunctions, i64, u64, usize

host = HostFunctions()


@host.function
def checksum(data: usize, n: usize) -> u64:
    return divide(n)


def divide(n: int) -> i64:
    return 1 // (n - n)
