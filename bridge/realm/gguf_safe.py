"""GGUF files read into private memory and validated before anything trusts them.

`read(path)` returns a `GGUFFile`: the metadata decoded, the tensor infos checked, and the whole file as a
read-only uint8 array that tensor views point into. Every failure is a `ModelError` whose message names
the file and the field: "model.gguf: metadata `tokenizer.ggml.tokens`: 1099511676928 STRING elements need
at least 8796093415424 bytes, but only 98361325 remain after offset 1107: the file is truncated or the
count is corrupt".

What is checked, while parsing and before anything is allocated for it:

- magic "GGUF", version 2 or 3, little-endian;
- the tensor and metadata counts against the bytes that remain: every entry needs at least a known number
  of bytes, so a count the file cannot hold is refused before the first entry is read;
- every string length and array count against the bytes that remain (an array of N elements of a type that
  needs at least B bytes each needs N*B), value types known, no arrays of arrays (llama.cpp refuses them
  too), booleans 0 or 1, strings valid UTF-8, keys non-empty and at most 65535 bytes, no key twice;
- `general.alignment`: a UINT32 power of two, at most 65536;
- tensor infos: a non-empty name seen once, 1..4 dimensions, each positive and their product below 2**63,
  a ggml type gguf knows, a row length that is a whole number of the type's blocks, an offset that is a
  multiple of the alignment, data inside the file, and no two tensors' data overlapping.

Cost is bounded by the file size: the parser walks the bytes once; numeric arrays become read-only numpy
views of the file's bytes (no copy); string arrays are decoded in one tight loop into Python strings, each
costing less than 8 times the bytes it occupies in the file (the worst case is a string of one 3-byte
character: 11 bytes in the file, about 84 as a str and its list slot). With the file's own bytes that keeps
a parse under 10 times the file's size. Nothing is allocated on a count before the count has been checked
against the bytes that remain, so a hostile count fails at once. (gguf's own reader walks an array element
by element before looking at the file's length: a 113-byte file with a count of 2**40 kept it looping,
allocating about 90 MB a second.)

The file is read, not mapped (the SIGBUS question). A memory map of a file that is truncated while it is
mapped makes the next touch of a page beyond the new end raise SIGBUS, which kills the Python host; and
pages of a rewritten file change under the model. So `read` copies the file into private process memory
(one `readinto` into a numpy buffer, checked to be exactly the size `fstat` reported) and parses only that
copy. Whatever happens to the file afterwards -- truncated, rewritten, deleted -- the loaded model and
every guest using it are unaffected, and what was validated is what runs. The cost is the file's size in
anonymous memory instead of page cache: the same resident size once the weights have been touched (which
the first forward pass does), but not shared between processes and not reclaimable without swap.
"""

from __future__ import annotations

import itertools
import os
import stat
import struct
from dataclasses import dataclass, field
from typing import Any

import gguf
import numpy as np
from numpy.typing import NDArray

from .errors import ModelError

__all__ = ["MAX_ALIGNMENT", "GGUFFile", "TensorInfo", "parse", "read"]

VT = gguf.GGUFValueType
MAGIC = b"GGUF"
VERSIONS = (2, 3)
MAX_ALIGNMENT = 1 << 16
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_KEY_BYTES = 0xFFFF  # the GGUF spec's limit on a key's length
_INT64_MAX = (1 << 63) - 1

# struct / numpy codes of the fixed-size value types (little-endian); BOOL is read as a byte and checked.
_SCALAR_CODE: dict[VT, str] = {
    VT.UINT8: "B", VT.INT8: "b", VT.UINT16: "H", VT.INT16: "h", VT.UINT32: "I", VT.INT32: "i",
    VT.FLOAT32: "f", VT.BOOL: "B", VT.UINT64: "Q", VT.INT64: "q", VT.FLOAT64: "d",
}  # fmt: skip
_SCALAR = {t: struct.Struct("<" + c) for t, c in _SCALAR_CODE.items()}
_DTYPE = {t: np.dtype("<" + c) for t, c in _SCALAR_CODE.items()}
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")
# The fewest bytes one value of each type can occupy: a string is at least its 8-byte length, an array at
# least its 4-byte element type and 8-byte count.
_MIN_BYTES: dict[VT, int] = {**{t: s.size for t, s in _SCALAR.items()}, VT.STRING: 8, VT.ARRAY: 12}
# The fewest bytes of one metadata entry (key of >= 1 byte, type, smallest value) and one tensor info
# (name of >= 1 byte, n_dims, one dimension, type, offset).
_KV_MIN_BYTES = 8 + 1 + 4 + 1
_TENSOR_INFO_MIN_BYTES = 8 + 1 + 4 + 8 + 4 + 8


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's info, checked: its data is `n_bytes` bytes at absolute file offset `offset`."""

    name: str
    ggml_type: gguf.GGMLQuantizationType
    shape: tuple[int, ...]  # ggml order: shape[0] is the row length
    offset: int
    n_bytes: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class GGUFFile:
    """A validated GGUF file, held in private memory.

    `metadata` values are Python scalars and strings, lists of strings, and read-only numpy arrays (views
    of `data`) for numeric arrays. `types` gives each key's GGUF type, (type,) or (ARRAY, element type);
    `value_offsets` the file offset of each key's value (for an array, of its element type; the count
    follows 4 bytes later).
    """

    path: str
    version: int
    alignment: int
    data_offset: int
    metadata: dict[str, Any]
    types: dict[str, tuple[VT, ...]]
    value_offsets: dict[str, int]
    tensors: dict[str, TensorInfo]
    data: NDArray[np.uint8] = field(repr=False)  # the whole file, read-only

    @property
    def size(self) -> int:
        return int(self.data.size)

    def tensor_data(self, info: TensorInfo) -> NDArray[np.uint8]:
        """The tensor's bytes: a read-only view, (n_bytes,) uint8."""
        return self.data[info.offset : info.offset + info.n_bytes]


def read(path: str | os.PathLike[str]) -> GGUFFile:
    """Reads the GGUF at `path` into private memory and validates it.

    Raises ModelError, naming the file and the field, when the file cannot be read (or held in memory),
    changes size while it is read, or is not a valid GGUF.
    """
    origin = str(path)
    try:
        # O_NONBLOCK: a FIFO put where the file was is refused below instead of blocking the open.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        with open(fd, "rb", buffering=0) as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ModelError(f"{origin}: not a regular file")
            size = st.st_size
            try:
                data = np.empty(size, np.uint8)
            except MemoryError:
                raise ModelError(f"{origin}: its {size} bytes do not fit in this host's memory") from None
            view = data.data  # a memoryview of the buffer
            got = 0
            while got < size:
                n = f.readinto(view[got:])
                if not n:
                    break
                got += n
            if got != size:
                raise ModelError(
                    f"{origin}: the file shrank while it was read ({got} of {size} bytes): "
                    "it is being truncated or rewritten"
                )
    except OSError as exc:
        raise ModelError(f"{origin}: cannot read the file: {exc.strerror or exc}") from None
    data.flags.writeable = False
    return parse(data, origin)


PEEK_BYTES = 1 << 20  # where peek_metadata looks: the first keys of any GGUF written by gguf-py or llama.cpp


def peek_metadata(path: str | os.PathLike[str], key: str) -> Any:
    """The value of metadata `key` when the file's first PEEK_BYTES hold it, without reading the rest (so an
    unsupported model is refused before its weights are read); None otherwise, or when the file is not a
    readable GGUF, for `read` to say why."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        with open(fd, "rb", buffering=0) as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            head = f.read(PEEK_BYTES)
    except OSError:
        return None
    parser = _Parser(np.frombuffer(head, np.uint8), str(path))
    try:
        return parser.first_value(key)
    except ModelError:  # cut off by the peek, or broken: the full read decides
        return None


def parse(data: NDArray[np.uint8], origin: str) -> GGUFFile:
    """Validates the GGUF held in `data` (the whole file, uint8); `origin` names it in messages.

    Numeric metadata arrays and tensor data are views of `data`. Raises ModelError.
    """
    return _Parser(data, origin).parse()


class _Parser:
    """One pass over the bytes; `pos` is where the next field starts."""

    def __init__(self, data: NDArray[np.uint8], origin: str) -> None:
        if data.dtype != np.uint8 or data.ndim != 1:
            raise TypeError("parse wants the whole file as a 1-D uint8 array")
        self.data = data
        self.buf = data.data  # a memoryview: struct and str read it without copies
        self.size = int(data.size)
        self.origin = origin
        self.pos = 0

    # --- errors -----------------------------------------------------------------------------------

    def fail(self, what: str, problem: str) -> ModelError:
        return ModelError(f"{self.origin}: {what}: {problem}")

    def truncated(self, what: str, need: int) -> ModelError:
        return self.fail(
            what,
            f"the file is truncated: {need} bytes needed at offset {self.pos}, "
            f"but only {self.size - self.pos} remain (file size {self.size})",
        )

    # --- primitive fields -------------------------------------------------------------------------

    def need(self, n: int, what: str) -> None:
        if n > self.size - self.pos:
            raise self.truncated(what, n)

    def fits(self, count: int, each: int, what: str, things: str, reserved: int = 0) -> None:
        """Refuses a count of entries needing at least `each` bytes each that the file cannot hold."""
        left = self.size - self.pos - reserved
        if count * each > left:
            raise self.fail(
                what,
                f"{count} {things} need at least {count * each} bytes, but only {max(left, 0)} remain "
                f"after offset {self.pos}: the file is truncated or the count is corrupt",
            )

    def u32(self, what: str) -> int:
        self.need(4, what)
        (v,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return int(v)

    def u64(self, what: str) -> int:
        self.need(8, what)
        (v,) = _U64.unpack_from(self.buf, self.pos)
        self.pos += 8
        return int(v)

    def string(self, what: str, limit: int | None = None) -> str:
        n = self.u64(f"{what} (length)")
        if limit is not None and n > limit:
            raise self.fail(what, f"{n} bytes long (at most {limit})")
        if n > self.size - self.pos:
            raise self.fail(
                what,
                f"a string of {n} bytes at offset {self.pos} runs past the end of the file "
                f"({self.size - self.pos} bytes remain): the file is truncated or the length is corrupt",
            )
        start = self.pos
        self.pos += n
        try:
            return str(self.buf[start : start + n], "utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(what, f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None

    # --- metadata values --------------------------------------------------------------------------

    def value_type(self, what: str) -> VT:
        raw = self.u32(what)
        try:
            return VT(raw)
        except ValueError:
            raise self.fail(what, f"unknown value type {raw}") from None

    def value(self, vtype: VT, what: str) -> Any:
        if vtype == VT.STRING:
            return self.string(what)
        s = _SCALAR[vtype]
        self.need(s.size, what)
        (v,) = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        if vtype == VT.BOOL:
            if v > 1:
                raise self.fail(what, f"boolean value {v} is neither 0 nor 1")
            return bool(v)
        return v

    def array(self, what: str) -> tuple[VT, Any]:
        """(element type, value) of an array: a list of strings, or a read-only numpy view."""
        sub = self.value_type(f"{what} (element type)")
        if sub == VT.ARRAY:
            raise self.fail(what, "arrays of arrays are not supported (llama.cpp refuses them too)")
        count = self.u64(f"{what} (count)")
        self.fits(count, _MIN_BYTES[sub], what, f"{sub.name} elements")
        if sub == VT.STRING:
            return sub, self.strings(count, what)
        dt = _DTYPE[sub]
        start = self.pos
        self.pos += count * dt.itemsize
        arr = np.frombuffer(self.data, dtype=dt, count=count, offset=start)  # a view, no copy
        if sub == VT.BOOL:
            if count and int(arr.max()) > 1:
                bad = int(np.argmax(arr > 1))
                raise self.fail(f"{what}[{bad}]", f"boolean value {int(arr[bad])} is neither 0 nor 1")
            arr = arr.view(np.bool_)
        return sub, arr

    def strings(self, count: int, what: str) -> list[str]:
        # The one hot loop (49k tokens and 49k merges for SmolLM2): locals only, one try around it all.
        out: list[str] = []
        append = out.append
        unpack = _U64.unpack_from
        buf, pos, size = self.buf, self.pos, self.size
        i = 0
        try:
            for i in range(count):
                if size - pos < 8:
                    self.pos = pos
                    raise self.truncated(f"{what}[{i}] (length)", 8)
                (n,) = unpack(buf, pos)
                pos += 8
                if n > size - pos:
                    self.pos = pos
                    raise self.fail(
                        f"{what}[{i}]",
                        f"a string of {n} bytes at offset {pos} runs past the end of the file "
                        f"({size - pos} bytes remain): the file is truncated or the length is corrupt",
                    )
                append(str(buf[pos : pos + n], "utf-8"))
                pos += n
        except UnicodeDecodeError as exc:
            raise self.fail(f"{what}[{i}]", f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        self.pos = pos
        return out

    # --- the file ---------------------------------------------------------------------------------

    def first_value(self, wanted: str) -> Any:
        """The value of metadata `wanted`, parsing keys only up to it; None when absent."""
        self.need(4, "magic")
        if bytes(self.buf[:4]) != MAGIC:
            return None
        self.pos = 4
        if self.u32("version") not in VERSIONS:
            return None
        self.u64("tensor count")
        for i in range(self.u64("metadata count")):
            key = self.string(f"metadata key #{i}", MAX_KEY_BYTES)
            vtype = self.value_type(f"metadata `{key}` (type)")
            value = self.array(key)[1] if vtype == VT.ARRAY else self.value(vtype, key)
            if key == wanted:
                return value
        return None

    def parse(self) -> GGUFFile:
        self.need(4, "magic")
        magic = bytes(self.buf[:4])
        if magic != MAGIC:
            raise self.fail("not a usable GGUF file", f"magic is {magic!r}, expected {MAGIC!r}")
        self.pos = 4
        version = self.u32("version")
        if version not in VERSIONS:
            swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
            if swapped in VERSIONS:
                raise self.fail("version", "big-endian GGUF files are not supported")
            raise self.fail("version", f"version {version} is not supported (2 or 3)")
        n_tensors = self.u64("tensor count")
        n_kv = self.u64("metadata count")
        self.fits(n_kv, _KV_MIN_BYTES, "metadata count", "metadata entries")
        self.fits(
            n_tensors, _TENSOR_INFO_MIN_BYTES, "tensor count", "tensor infos", reserved=n_kv * _KV_MIN_BYTES
        )

        metadata: dict[str, Any] = {}
        types: dict[str, tuple[VT, ...]] = {}
        offsets: dict[str, int] = {}
        for i in range(n_kv):
            key = self.string(f"metadata key #{i}", MAX_KEY_BYTES)
            if not key:
                raise self.fail(f"metadata key #{i}", "the key is empty")
            if key in metadata:
                raise self.fail(f"metadata `{key}`", "the key appears twice")
            what = f"metadata `{key}`"
            vtype = self.value_type(f"{what} (type)")
            offsets[key] = self.pos
            if vtype == VT.ARRAY:
                sub, metadata[key] = self.array(what)
                types[key] = (vtype, sub)
            else:
                metadata[key] = self.value(vtype, what)
                types[key] = (vtype,)
        alignment = self.alignment(metadata, types)

        infos: list[tuple[str, gguf.GGMLQuantizationType, tuple[int, ...], int, int]] = []
        names: set[str] = set()
        for i in range(n_tensors):
            name = self.string(f"tensor #{i} name")
            if not name:
                raise self.fail(f"tensor #{i} name", "the name is empty")
            if name in names:
                raise self.fail(f"tensor `{name}`", "the name appears twice")
            names.add(name)
            infos.append(self.tensor_info(name))
        data_offset = -(-self.pos // alignment) * alignment
        if infos and data_offset > self.size:
            raise self.fail(
                "tensor data",
                f"the file is truncated: it ends at {self.size}, before the tensor data at {data_offset}",
            )
        tensors = self.place(infos, data_offset, alignment)
        return GGUFFile(
            path=self.origin,
            version=version,
            alignment=alignment,
            data_offset=data_offset,
            metadata=metadata,
            types=types,
            value_offsets=offsets,
            tensors=tensors,
            data=self.data,
        )

    def alignment(self, metadata: dict[str, Any], types: dict[str, tuple[VT, ...]]) -> int:
        if "general.alignment" not in metadata:
            return int(gguf.GGUF_DEFAULT_ALIGNMENT)
        what = "metadata `general.alignment`"
        if types["general.alignment"] != (VT.UINT32,):
            got = "/".join(t.name for t in types["general.alignment"])
            raise self.fail(what, f"type is {got}, expected UINT32")
        value = int(metadata["general.alignment"])
        if not 0 < value <= MAX_ALIGNMENT or value & (value - 1):
            raise self.fail(what, f"{value} is not a power of two from 1 to {MAX_ALIGNMENT}")
        return value

    def tensor_info(self, name: str) -> tuple[str, gguf.GGMLQuantizationType, tuple[int, ...], int, int]:
        what = f"tensor `{name}`"
        n_dims = self.u32(f"{what} n_dims")
        if not 1 <= n_dims <= MAX_DIMS:
            raise self.fail(f"{what} n_dims", f"{n_dims} dimensions (1 to {MAX_DIMS} allowed)")
        self.need(8 * n_dims, f"{what} dims")
        dims = struct.unpack_from(f"<{n_dims}Q", self.buf, self.pos)
        self.pos += 8 * n_dims
        n_elements = 1
        for d in dims:
            if not 0 < d <= _INT64_MAX:
                raise self.fail(f"{what} dims", f"dimension {d} in {list(dims)} is not in 1..2**63-1")
            n_elements *= d
        if n_elements > _INT64_MAX:
            raise self.fail(f"{what} dims", f"{list(dims)} hold more than 2**63 elements")
        raw_type = self.u32(f"{what} type")
        try:
            ggml_type = gguf.GGMLQuantizationType(raw_type)
            block, type_size = gguf.GGML_QUANT_SIZES[ggml_type]
        except (ValueError, KeyError):
            raise self.fail(f"{what} type", f"unknown ggml type {raw_type}") from None
        if dims[0] % block:
            raise self.fail(
                f"{what} dims",
                f"the row length {dims[0]} is not a multiple of {ggml_type.name}'s block size {block}",
            )
        offset = self.u64(f"{what} offset")
        return name, ggml_type, tuple(int(d) for d in dims), offset, n_elements // block * type_size

    def place(
        self,
        infos: list[tuple[str, gguf.GGMLQuantizationType, tuple[int, ...], int, int]],
        data_offset: int,
        alignment: int,
    ) -> dict[str, TensorInfo]:
        """Checks each tensor's data against the alignment, the file's end and the other tensors."""
        tensors: dict[str, TensorInfo] = {}
        room = self.size - data_offset
        for name, ggml_type, shape, offset, n_bytes in infos:
            what = f"tensor `{name}`"
            if offset % alignment:
                raise self.fail(f"{what} offset", f"{offset} is not a multiple of the alignment {alignment}")
            if offset > room or n_bytes > room - offset:
                raise self.fail(
                    f"{what} data",
                    f"{n_bytes} bytes at offset {data_offset + offset} run past the end of the file "
                    f"({self.size} bytes): the file is truncated or the offset is corrupt",
                )
            tensors[name] = TensorInfo(name, ggml_type, shape, data_offset + offset, n_bytes)
        ordered = sorted(tensors.values(), key=lambda t: t.offset)
        for prev, cur in itertools.pairwise(ordered):
            if cur.offset < prev.offset + prev.n_bytes:
                raise self.fail(
                    f"tensor `{cur.name}` data",
                    f"bytes {cur.offset}..{cur.offset + cur.n_bytes} overlap tensor `{prev.name}`'s "
                    f"{prev.offset}..{prev.offset + prev.n_bytes}",
                )
        return tensors
