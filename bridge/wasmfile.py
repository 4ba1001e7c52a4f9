"""What a module's binary says about its memories, read straight from the sections.

wasmtime's API lists a module's imports and exports, but not the memories it defines without exporting,
nor the memory index space (imported memories first, then defined ones) that multi-memory guests and
host declarations refer to by index. This reader walks the import, memory and export sections only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ModuleError


@dataclass
class MemoryInfo:
    """One memory in the module's memory index space."""

    index: int
    is64: bool
    minimum: int  # pages
    maximum: int | None  # pages
    shared: bool = False
    page_size: int = 65536
    imported_as: tuple[str, str] | None = None  # (module, name)
    exports: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """How messages name it: its first export, its import name, else memory[index]."""
        if self.exports:
            return self.exports[0]
        if self.imported_as:
            return f"{self.imported_as[0]}.{self.imported_as[1]}"
        return f"memory[{self.index}]"


class _Reader:
    def __init__(self, data: bytes, origin: str) -> None:
        self.data = data
        self.pos = 0
        self.origin = origin

    def fail(self, what: str) -> ModuleError:
        return ModuleError(f"{self.origin}: malformed module: {what} at byte {self.pos}")

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise self.fail("unexpected end")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uleb(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise self.fail("LEB128 too long")

    def name(self) -> str:
        n = self.uleb()
        raw = self.data[self.pos : self.pos + n]
        if len(raw) != n:
            raise self.fail("name runs past the end")
        self.pos += n
        return raw.decode("utf-8", "replace")

    def limits(self) -> tuple[bool, int, int | None, bool, int]:
        flags = self.uleb()
        minimum = self.uleb()
        maximum = self.uleb() if flags & 1 else None
        page_size = 65536
        if flags & 8:
            # custom-page-sizes: a log2 page size, which that proposal allows to be 0 or 16 only.
            log2 = self.uleb()
            if log2 not in (0, 16):
                raise self.fail(f"memory page size 2**{log2} is not 1 or 65536 bytes")
            page_size = 1 << log2
        return bool(flags & 4), minimum, maximum, bool(flags & 2), page_size

    def reftype(self) -> None:
        # 0x63/0x64 introduce a typed reference (function-references / GC), followed by a heap type.
        if self.byte() in (0x63, 0x64):
            self.sleb()

    def sleb(self) -> None:
        while self.byte() & 0x80:
            pass

    def valtype(self) -> None:
        b = self.data[self.pos] if self.pos < len(self.data) else -1
        if b in (0x63, 0x64):
            self.reftype()
        else:
            self.byte()


def read_memories(wasm: bytes, origin: str = "module") -> list[MemoryInfo]:
    """The module's memories in index-space order. Raises ModuleError on a malformed binary."""
    if wasm[:4] != b"\0asm":
        raise ModuleError(f"{origin}: not a WebAssembly module (no \\0asm magic)")
    r = _Reader(wasm, origin)
    r.pos = 8
    memories: list[MemoryInfo] = []
    while r.pos < len(wasm):
        section = r.byte()
        size = r.uleb()
        end = r.pos + size
        if end > len(wasm):
            raise r.fail(f"section {section} runs past the end of the file")
        if section == 2:  # imports
            for _ in range(r.uleb()):
                module, name = r.name(), r.name()
                kind = r.byte()
                if kind in (0, 4):  # func(type index) / tag(attribute, type index)
                    if kind == 4:
                        r.byte()
                    r.uleb()
                elif kind == 1:  # table
                    r.reftype()
                    r.limits()
                elif kind == 2:
                    is64, lo, hi, shared, page = r.limits()
                    memories.append(MemoryInfo(len(memories), is64, lo, hi, shared, page, (module, name)))
                elif kind == 3:  # global
                    r.valtype()
                    r.byte()
                else:
                    raise r.fail(f"unknown import kind {kind}")
        elif section == 5:
            for _ in range(r.uleb()):
                is64, lo, hi, shared, page = r.limits()
                memories.append(MemoryInfo(len(memories), is64, lo, hi, shared, page))
        elif section == 7:
            for _ in range(r.uleb()):
                name = r.name()
                kind = r.byte()
                index = r.uleb()
                if kind == 2 and index < len(memories):
                    memories[index].exports.append(name)
        r.pos = end
    return memories


def strip_debug_sections(wasm: bytes, origin: str = "module") -> bytes:
    """The module without its DWARF (`.debug_*` custom sections), keeping the `name` section.

    zig's linker can only strip both; bridge wants function names in backtraces but not megabytes of
    libc debug info. Raises ModuleError on a malformed binary.
    """
    if wasm[:4] != b"\0asm":
        raise ModuleError(f"{origin}: not a WebAssembly module (no \\0asm magic)")
    r = _Reader(wasm, origin)
    r.pos = 8
    out = [wasm[:8]]
    while r.pos < len(wasm):
        start = r.pos
        section = r.byte()
        size = r.uleb()
        end = r.pos + size
        if end > len(wasm):
            raise r.fail(f"section {section} runs past the end of the file")
        if not (section == 0 and r.name().startswith(".debug")):
            out.append(wasm[start:end])
        r.pos = end
    return b"".join(out)
