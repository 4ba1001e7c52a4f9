"""Host functions declared by type hints, compiled once, bound per guest instance.

A `HostFunctions` registry collects plain Python functions. The decorator reads each function's hints
(see `bridge.hints`) and compiles them into a declaration; binding it to a guest instance turns the
declaration into a wasm `FuncType` (pointer-sized parameters are i32 or i64 after the guest's memory)
and a per-call path that only reads the raw arguments, asks `GuestMemory.view` for each array, calls
the function and stores its result.

Registries are explicit objects: nothing is installed by merely decorating a function.
"""

from __future__ import annotations

import ast
import inspect
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

import numpy as np

from .errors import BoundsError, DeclarationError, GuestTrap, ResultError
from .hints import Array, Count, MemoryRef, Pointer, Scalar, ScalarKind, Text
from .limits import Limits
from .memory import GuestMemory
from .trace import Tracer

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
WasmType = Literal["i32", "i64", "f32", "f64"]

_INT_KINDS = ("i32", "u32", "i64", "u64", "usize")
_SIGNED_RANGE = {"i32": (-(1 << 31), 1 << 31), "i64": (-(1 << 63), 1 << 63)}


class HandleError(LookupError):
    """A handle that is unknown, already closed, or of another kind.

    >>> handles = Handles()
    >>> h = handles.add(["a host object"])
    >>> handles.pop(h, list)  # closed: the guest's number is now stale
    ['a host object']
    >>> handles.get(h, list)
    Traceback (most recent call last):
    bridge.host.HandleError: handle 1 is not an open list
    >>> handles.add(["another"])  # numbers are never reused, so a stale one cannot reach this object
    2
    """


class HandleLimitError(MemoryError):
    """A guest instance holds as many handles as it may (`Handles.limit`).

    >>> handles = Handles(limit=2)
    >>> handles.add("a"), handles.add("b")
    (1, 2)
    >>> handles.add("c")
    Traceback (most recent call last):
    bridge.host.HandleLimitError: 2 handles are open, the most one guest may hold
    >>> handles.pop(1, str)  # closing one makes room
    'a'
    >>> handles.add("c")
    3
    """


# Open handles one instance may hold at once: each costs host memory, so a loop of opens is bounded.
MAX_HANDLES = 65536


class Handles:
    """Integer handles (1, 2, ...) for host objects, private to one guest instance.

    A guest only ever sees the numbers; another instance's numbers mean nothing here.

    >>> handles = Handles()
    >>> h = handles.add(["a host object"])
    >>> h, handles.get(h, list)
    (1, ['a host object'])
    >>> handles.get(h, dict)
    Traceback (most recent call last):
    bridge.host.HandleError: handle 1 is not an open dict
    """

    def __init__(self, limit: int = MAX_HANDLES) -> None:
        self._items: dict[int, object] = {}
        self._next = 1
        self.limit = limit

    def add(self, obj: object) -> int:
        """A new handle for `obj`. Raises HandleLimitError when `limit` handles are open."""
        if len(self._items) >= self.limit:
            raise HandleLimitError(f"{self.limit} handles are open, the most one guest may hold")
        handle = self._next
        self._next += 1
        self._items[handle] = obj
        return handle

    def get(self, handle: int, kind: type[T]) -> T:
        """The object behind `handle`. Raises HandleError when unknown, closed or not a `kind`."""
        obj = self._items.get(handle)
        if not isinstance(obj, kind):
            raise HandleError(f"handle {handle} is not an open {kind.__name__}")
        return obj

    def pop(self, handle: int, kind: type[T]) -> T:
        """Removes and returns the object. Raises HandleError as `get` does."""
        obj = self.get(handle, kind)
        del self._items[handle]
        return obj

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._items))


class GuestInstance(Protocol):
    """What a Context needs of the instance behind it (a `bridge.Guest` is one)."""

    @property
    def limits(self) -> Limits: ...

    def memory_for(self, ref: MemoryRef = None) -> GuestMemory: ...

    def call(self, name: str, *args: Any) -> Any: ...

    @property
    def tracer(self) -> Tracer | None: ...


class Context:
    """What a host function sees of the guest instance calling it.

    Declare a parameter of type `Context` to receive it. It gives the instance's memories, the
    registry's per-instance `state`, a private handle table, and calls back into the guest.
    Arrays obtained from it are valid only during the current host call.

    Here the host keeps lists for the guest, which sees only their handles (its module re-exports the
    imports, so this example can call them directly):

    >>> from bridge import Guest, HostFunctions, i32
    >>> host = HostFunctions()
    >>> @host.function
    ... def list_new(ctx: Context) -> i32:
    ...     return ctx.handles.add([])
    >>> @host.function
    ... def list_push(ctx: Context, handle: i32, value: i32) -> None:
    ...     ctx.handles.get(handle, list).append(value)
    >>> @host.function
    ... def list_free(ctx: Context, handle: i32) -> None:
    ...     ctx.handles.pop(handle, list)
    >>> guest = Guest(b'''(module
    ...   (func (export "new") (import "env" "list_new") (result i32))
    ...   (func (export "push") (import "env" "list_push") (param i32 i32))
    ...   (func (export "free") (import "env" "list_free") (param i32)))''', hosts=[host])
    >>> h = guest.call("new")
    >>> guest.call("push", h, 7)
    >>> guest.context(host).handles.get(h, list)  # the same Context, from outside
    [7]
    >>> guest.call("free", h)
    >>> guest.call("push", h, 8)
    Traceback (most recent call last):
    bridge.errors.HostError: host function `list_push` raised HandleError: handle 1 is not an open list
    >>> guest.close()
    """

    def __init__(self, instance: GuestInstance, state: Any) -> None:
        self.instance = instance
        self.state = state
        self.handles = Handles()
        self.function: str | None = None  # the host function being called, for error messages
        self.tracer: Tracer | None = getattr(instance, "tracer", None)  # --trace: each call is a span
        self.viewed = [0, 0]  # bytes viewed read-only and writable by `view` in this call (when traced)
        self._memories: dict[MemoryRef, GuestMemory] = {}

    @property
    def memory(self) -> GuestMemory:
        """The default memory (exported as "memory", else the first one)."""
        return self.memories(None)

    @property
    def limits(self) -> Limits:
        """The guest's limits, for host functions that bound what they hold for it."""
        return self.instance.limits

    def memories(self, ref: MemoryRef = None) -> GuestMemory:
        """A memory by export/import name or index. Raises LinkError when there is no such memory."""
        mem = self._memories.get(ref)
        if mem is None:
            mem = self._memories[ref] = self.instance.memory_for(ref)
        return mem

    def view(
        self,
        ptr: int,
        count: int,
        dtype: Any = np.uint8,
        *,
        memory: MemoryRef = None,
        writable: bool = True,
        parameter: str | None = None,
    ) -> np.ndarray[Any, Any]:
        """`GuestMemory.view` on the named memory, for pointers a host function checks itself (`Ptr`).

        Raises BoundsError, naming the host function being called and `parameter`, when out of range.
        """
        view = self.memories(memory).view(
            ptr, count, dtype, writable=writable, function=self.function, parameter=parameter
        )
        if self.tracer is not None:  # the traced call reports the bytes its views spanned
            self.viewed[1 if writable else 0] += view.nbytes
        return view

    def call(self, export: str, *args: Any) -> Any:
        """Calls a function the guest exports (for example its allocator)."""
        return self.instance.call(export, *args)

    def close(self) -> None:
        """Drops the handles, the memories and the state (calling `state.close()` if it has one)."""
        state, self.state = self.state, None
        self.handles = Handles()
        self._memories.clear()
        close = getattr(state, "close", None)
        if callable(close):
            close()


# --- declarations ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Param:
    name: str
    role: Literal["context", "scalar", "array", "text", "pointer"]
    scalar: ScalarKind | None = None
    array: Array | None = None
    dtype: np.dtype[Any] | None = None
    memory: MemoryRef = None
    pointer: Pointer | None = None


def _wasm_type(kind: ScalarKind, pointer64: bool) -> WasmType:
    if kind == "usize":
        return "i64" if pointer64 else "i32"
    return {"i32": "i32", "u32": "i32", "i64": "i64", "u64": "i64", "f32": "f32", "f64": "f64"}[kind]  # type: ignore[return-value]


def _dtype_from_hint(hint: Any) -> np.dtype[Any] | None:
    # NDArray[np.float32] is ndarray[tuple[Any, ...], dtype[float32]].
    args = typing.get_args(hint)
    if len(args) == 2:
        inner = typing.get_args(args[1])
        if inner and isinstance(inner[0], type) and issubclass(inner[0], np.generic):
            return np.dtype(inner[0])
    return None


class HostFunction:
    """One compiled declaration: a Python function and the guest signature its hints declare.

    >>> from bridge import HostFunctions, Utf8, u32
    >>> host = HostFunctions()
    >>> @host.function
    ... def count_words(text: Utf8) -> u32:
    ...     return len(text.split())
    >>> host["count_words"]
    <HostFunction env.count_words>
    >>> host["count_words"].describe(lambda memory: False)  # a wasm32 guest: (pointer, length) as i32
    'env.count_words (i32, i32) -> i32'
    >>> host["count_words"].describe(lambda memory: True)  # a wasm64 guest: as i64
    'env.count_words (i64, i64) -> i32'
    >>> count_words("still a plain function")  # the decorator returns the function unchanged
    4
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        params: Sequence[_Param],
        result: ScalarKind | None,
        *,
        name: str,
        module: str,
        allow_overlap: bool,
    ) -> None:
        self.fn = fn
        self.params = tuple(params)
        self.result = result
        self.name = name
        self.module = module
        self.allow_overlap = allow_overlap
        scalar_slots = {}
        slot = 0
        for p in self.params:
            if p.role == "scalar":
                scalar_slots[p.name] = slot
            if p.role != "context":
                slot += 2 if p.role == "text" else 1
        self._scalar_slots = scalar_slots
        self._counts = {
            p.name: _compile_count(p.array.count, self, p.name) for p in self.params if p.array is not None
        }

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"

    def memory_refs(self) -> set[MemoryRef]:
        """The guest memories this function's pointers refer to (None: the default memory)."""
        refs = {p.memory for p in self.params if p.role in ("array", "text", "pointer")}
        if any(p.scalar == "usize" for p in self.params) or self.result == "usize":
            refs.add(None)
        return refs

    def wasm_signature(self, pointer64: Callable[[MemoryRef], bool]) -> tuple[list[WasmType], list[WasmType]]:
        """The wasm (params, results), given each referenced memory's index type."""
        params: list[WasmType] = []
        for p in self.params:
            if p.role == "scalar":
                assert p.scalar is not None
                params.append(_wasm_type(p.scalar, p.scalar == "usize" and pointer64(None)))
            elif p.role in ("array", "pointer"):
                params.append(_wasm_type("usize", pointer64(p.memory)))
            elif p.role == "text":
                params.extend([_wasm_type("usize", pointer64(p.memory))] * 2)
        results = (
            []
            if self.result is None
            else [_wasm_type(self.result, self.result == "usize" and pointer64(None))]
        )
        return params, results

    def describe(self, pointer64: Callable[[MemoryRef], bool]) -> str:
        params, results = self.wasm_signature(pointer64)
        return f"{self.qualname} ({', '.join(params)}) -> {', '.join(results) or '()'}"

    def bind(self, ctx: Context) -> Callable[[Any], None]:
        """The per-call path of this function for one guest instance.

        It takes wasmtime's raw argument array (`wasmtime_val_raw_t *`), in which it also stores the
        result. It raises BoundsError for a bad pointer range, and whatever the function raises.
        """
        memories = {ref: ctx.memories(ref) for ref in self.memory_refs()}
        default_bits = memories[None].pointer_bits if None in memories else 32

        readers: list[Callable[[Any], Any]] = []
        builders: list[Callable[[list[Any]], Any]] = []
        ranges: list[tuple[str, GuestMemory, int, int, Callable[[list[Any]], int], bool]] = []
        scalar_slots: list[tuple[str, int]] = []  # for tracing: (name, slot) of each scalar
        text_slots: list[int] = []  # for tracing: each text's pointer slot (its length follows)
        slot = 0
        fname = self.name
        for p in self.params:
            if p.role == "context":
                builders.append(_context_builder(ctx, fname))
                continue
            if p.role == "scalar":
                assert p.scalar is not None
                scalar_slots.append((p.name, slot))
                readers.append(_reader(slot, p.scalar, default_bits))
                builders.append(_take(slot))
                slot += 1
                continue
            mem = memories[p.memory]
            readers.append(_reader(slot, "usize", mem.pointer_bits))
            if p.role == "pointer":
                builders.append(_take(slot))
            elif p.role == "text":
                text_slots.append(slot)
                readers.append(_reader(slot + 1, "usize", mem.pointer_bits))
                builders.append(_text_builder(mem, slot, fname, p.name))
                slot += 1
            else:
                assert p.array is not None and p.dtype is not None
                count = self._counts[p.name]
                builders.append(_array_builder(mem, slot, count, p.dtype, fname, p.name, p.array.writable))
                ranges.append((p.name, mem, slot, p.dtype.itemsize, count, p.array.writable))
            slot += 1

        check_overlap = None if self.allow_overlap else _overlap_checker(fname, ranges)
        store_result = _result_writer(self.result, fname, default_bits)
        fn = self.fn

        if check_overlap is None:

            def call(args: Any) -> None:
                v = [read(args) for read in readers]
                store_result(args, fn(*[build(v) for build in builders]))

        else:

            def call(args: Any) -> None:
                v = [read(args) for read in readers]
                check_overlap(v)
                store_result(args, fn(*[build(v) for build in builders]))

        tracer = ctx.tracer
        if tracer is None:
            return call
        # Traced: the call as one span, with its scalar arguments (handles, sizes, counts) and the bytes
        # its views span: read-only arrays and texts in, writable arrays out.
        spans = [(itemsize, count, writable) for _, _, _, itemsize, count, writable in ranges]

        def traced(args: Any) -> None:
            v = [read(args) for read in readers]
            ctx.viewed = [0, 0]
            start = tracer.now()
            try:
                call(args)
            finally:
                end = tracer.now()
                sizes = [(count(v) * itemsize, writable) for itemsize, count, writable in spans]
                viewed_in, viewed_out = ctx.viewed
                tracer.span(
                    fname,
                    start,
                    end,
                    {name: v[s] for name, s in scalar_slots},
                    bytes_in=viewed_in
                    + sum(v[s + 1] for s in text_slots)
                    + sum(n for n, w in sizes if not w),
                    bytes_out=viewed_out + sum(n for n, w in sizes if w),
                )

        return traced

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calls the Python function directly (host functions stay ordinary functions)."""
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<HostFunction {self.qualname}>"


def _context_builder(ctx: Context, function: str) -> Callable[[list[Any]], Context]:
    def build(v: list[Any]) -> Context:
        ctx.function = function
        return ctx

    return build


def _take(slot: int) -> Callable[[list[Any]], Any]:
    return lambda v: v[slot]


def _reader(slot: int, kind: ScalarKind, pointer_bits: int) -> Callable[[Any], Any]:
    if kind == "i32":
        return lambda a: a[slot].i32
    if kind == "i64":
        return lambda a: a[slot].i64
    if kind == "f32":
        return lambda a: a[slot].f32
    if kind == "f64":
        return lambda a: a[slot].f64
    if kind == "u32" or (kind == "usize" and pointer_bits == 32):
        return lambda a: a[slot].i32 & 0xFFFFFFFF
    return lambda a: a[slot].i64 & 0xFFFFFFFFFFFFFFFF


def _array_builder(
    mem: GuestMemory,
    slot: int,
    count: Callable[[list[Any]], int],
    dtype: np.dtype[Any],
    function: str,
    parameter: str,
    writable: bool,
) -> Callable[[list[Any]], Any]:
    view = mem.view
    return lambda v: view(v[slot], count(v), dtype, function=function, parameter=parameter, writable=writable)


def _text_builder(mem: GuestMemory, slot: int, function: str, parameter: str) -> Callable[[list[Any]], str]:
    def build(v: list[Any]) -> str:
        raw = mem.view(v[slot], v[slot + 1], np.uint8, function=function, parameter=parameter)
        try:
            return raw.tobytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise GuestTrap(
                f"host function `{function}`, parameter `{parameter}`: not valid UTF-8 ({exc.reason} "
                f"at byte {exc.start})"
            ) from None

    return build


def _overlap_checker(
    function: str,
    ranges: list[tuple[str, GuestMemory, int, int, Callable[[list[Any]], int], bool]],
) -> Callable[[list[Any]], None] | None:
    """A check that no output range overlaps another array's range, or None when none can."""
    # Only pairs in the same memory with at least one writable side can conflict; find them once.
    pairs = [
        (i, j)
        for i, (_, m1, *_r1, w1) in enumerate(ranges)
        for j, (_, m2, *_r2, w2) in enumerate(ranges)
        if i < j and m1 is m2 and (w1 or w2)
    ]
    if not pairs:
        return None
    spans = [(slot, itemsize, count) for _, _, slot, itemsize, count, _ in ranges]

    def check(v: list[Any]) -> None:
        bounds = [(v[slot], v[slot] + count(v) * itemsize) for slot, itemsize, count in spans]
        for i, j in pairs:
            s1, e1 = bounds[i]
            s2, e2 = bounds[j]
            if s1 < e2 and s2 < e1 and s1 < e1 and s2 < e2:
                # A range outside memory is the real error: report it before the overlap.
                for k in (i, j):
                    name, mem, slot, itemsize, count, _ = ranges[k]
                    mem.view(v[slot], count(v) * itemsize, function=function, parameter=name)
                n1, n2 = ranges[i][0], ranges[j][0]
                raise BoundsError(
                    f"host function `{function}`: parameters `{n1}` [{s1:#x}, {e1:#x}) and `{n2}` "
                    f"[{s2:#x}, {e2:#x}) overlap, and `{function}` does not allow an output to overlap "
                    "another array",
                    function=function,
                    parameter=n2,
                    pointer=s2,
                    length=e2 - s2,
                    memory_size=ranges[i][1].size,
                )

    return check


def _result_writer(kind: ScalarKind | None, function: str, pointer_bits: int) -> Callable[[Any, Any], None]:
    if kind is None:

        def store_none(args: Any, result: Any) -> None:
            if result is not None:
                raise ResultError(f"it is declared to return nothing, but returned {_shown(result)}")

        return store_none
    if kind in ("f32", "f64"):
        float_field = kind

        def store_float(args: Any, result: Any) -> None:
            if isinstance(result, (str, bytes)) or not hasattr(result, "__float__"):
                raise ResultError(f"it is declared to return {float_field}, but returned {_shown(result)}")
            setattr(args[0], float_field, float(result))

        return store_float
    bits = 32 if kind in ("i32", "u32") or (kind == "usize" and pointer_bits == 32) else 64
    lo, hi = _SIGNED_RANGE.get(kind, (0, 1 << bits))
    int_field = "i32" if bits == 32 else "i64"
    wrap = 1 << bits
    half = 1 << (bits - 1)

    def store_int(args: Any, result: Any) -> None:
        value = result
        if type(value) is not int:  # the common case costs one type check
            if isinstance(result, (bool, float, str, bytes)) or not hasattr(result, "__index__"):
                raise ResultError(f"it is declared to return {kind}, but returned {_shown(result)}")
            value = int(result)
        if not lo <= value < hi:
            raise ResultError(f"it returned {value}, outside the range of its declared {kind}")
        # The raw slot is signed; unsigned values at or above 2**(bits-1) wrap, as wasm sees them.
        setattr(args[0], int_field, value - wrap if value >= half else value)

    return store_int


def _shown(value: Any) -> str:
    """A returned value for a message: its type, and its repr cut short."""
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


_ALLOWED_OPS = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)


def _compile_count(count: Count, hf: HostFunction, parameter: str) -> Callable[[list[Any]], int]:
    """Turns a count declaration into a function of the raw argument values."""
    slots = hf._scalar_slots
    int_scalars = {p.name for p in hf.params if p.role == "scalar" and p.scalar in _INT_KINDS}
    where = f"`{hf.name}`, parameter `{parameter}`"
    if isinstance(count, bool):
        raise DeclarationError(f"{where}: count must be an int, a parameter expression or a callable")
    if isinstance(count, int):
        if count < 0:
            raise DeclarationError(f"{where}: count {count} is negative")
        return lambda v: count
    if isinstance(count, str):
        try:
            tree = ast.parse(count.strip(), mode="eval")
        except SyntaxError as exc:
            raise DeclarationError(f"{where}: count {count!r} is not an expression: {exc.msg}") from None
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                if node.id not in int_scalars:
                    raise DeclarationError(
                        f"{where}: count {count!r} names `{node.id}`, which is not an integer parameter "
                        f"(integer parameters: {', '.join(sorted(int_scalars)) or 'none'})"
                    )
            elif isinstance(node, ast.Constant):
                if not isinstance(node.value, int) or isinstance(node.value, bool):
                    raise DeclarationError(f"{where}: count {count!r} may only use integer constants")
            elif not isinstance(node, (ast.Expression, ast.BinOp, ast.Load, *_ALLOWED_OPS)):
                raise DeclarationError(
                    f"{where}: count {count!r} may only use parameter names, integers and + - * // %"
                )
        # Names become slots of the raw argument list: "rows * cols" -> v[2] * v[3].
        source = ast.unparse(_SlotNames(slots).visit(tree))
        compiled: Callable[[list[Any]], int] = eval(f"lambda v: {source}", {})
        return compiled
    if callable(count):
        names = list(inspect.signature(count).parameters)
        missing = [n for n in names if n not in slots]
        if missing:
            raise DeclarationError(
                f"{where}: count callable takes {missing}, which are not scalar parameters"
            )
        picks = [(n, slots[n]) for n in names]
        fn = count
        return lambda v: int(fn(**{n: v[s] for n, s in picks}))
    raise DeclarationError(f"{where}: count must be an int, a parameter expression or a callable")


class _SlotNames(ast.NodeTransformer):
    def __init__(self, slots: dict[str, int]) -> None:
        self.slots = slots

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.Subscript(ast.Name("v", ast.Load()), ast.Constant(self.slots[node.id]), ast.Load())


def _param_from_hint(fname: str, name: str, hint: Any) -> _Param:
    where = f"`{fname}`, parameter `{name}`"
    if hint is Context:
        return _Param(name, "context")
    if typing.get_origin(hint) is not typing.Annotated:
        raise DeclarationError(
            f"{where}: hint {hint!r} does not declare a guest type; use a scalar (i32, u32, i64, u64, f32, "
            "f64, usize), Annotated[NDArray[...], In/Out/InOut(count)], Utf8, Ptr or Context"
        )
    base, *markers = typing.get_args(hint)
    for marker in markers:
        if isinstance(marker, Scalar):
            return _Param(name, "scalar", scalar=marker.kind)
        if isinstance(marker, Text):
            return _Param(name, "text", memory=marker.memory)
        if isinstance(marker, Pointer):
            return _Param(name, "pointer", memory=marker.memory, pointer=marker)
        if isinstance(marker, Array):
            dtype = np.dtype(marker.dtype) if marker.dtype is not None else _dtype_from_hint(base)
            if dtype is None:
                raise DeclarationError(
                    f"{where}: give the dtype as NDArray[np.float32] or In(..., dtype=...)"
                )
            if dtype.hasobject:
                raise DeclarationError(f"{where}: dtype {dtype} cannot live in guest memory")
            return _Param(name, "array", array=marker, dtype=dtype, memory=marker.memory)
    raise DeclarationError(f"{where}: Annotated hint carries no bridge marker")


def _declare(fn: Callable[..., Any], *, name: str | None, module: str, allow_overlap: bool) -> HostFunction:
    fname = name or fn.__name__
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise DeclarationError(f"`{fname}`: cannot resolve its type hints: {exc}") from exc
    params = []
    for pname, sp in inspect.signature(fn).parameters.items():
        if sp.kind in (sp.VAR_POSITIONAL, sp.VAR_KEYWORD, sp.KEYWORD_ONLY):
            raise DeclarationError(f"`{fname}`: parameter `{pname}` must be positional")
        if pname not in hints:
            raise DeclarationError(f"`{fname}`: parameter `{pname}` has no type hint")
        params.append(_param_from_hint(fname, pname, hints[pname]))
    if sum(p.role == "context" for p in params) > 1:
        raise DeclarationError(f"`{fname}`: at most one Context parameter")
    ret = hints.get("return", type(None))
    result: ScalarKind | None = None
    if ret is not type(None):
        rp = _param_from_hint(fname, "return", ret)
        if rp.role != "scalar":
            raise DeclarationError(
                f"`{fname}`: the return hint must be a scalar (i32, u32, ..., usize) or None"
            )
        result = rp.scalar
    return HostFunction(fn, params, result, name=fname, module=module, allow_overlap=allow_overlap)


class HostFunctions:
    """An explicit registry of host functions that guests import from `module`.

    `state`, if given, is called once per guest instance; host functions reach the result as
    `ctx.state`.

    >>> from bridge import Guest, i32
    >>> stats = HostFunctions("stats", state=list)  # guests import from "stats"; each gets its own list
    >>> @stats.function
    ... def record(ctx: Context, value: i32) -> None:
    ...     ctx.state.append(value)
    >>> @stats.function(name="count")
    ... def count_recorded(ctx: Context) -> i32:
    ...     return len(ctx.state)
    >>> stats
    <HostFunctions 'stats': record, count>
    >>> wat = b'''(module
    ...   (import "stats" "record" (func $record (param i32)))
    ...   (import "stats" "count" (func $count (result i32)))
    ...   (func (export "run") (param i32) (result i32) (call $record (local.get 0)) (call $count)))'''
    >>> with Guest(wat, hosts=[stats]) as a, Guest(wat, hosts=[stats]) as b:
    ...     print(a.call("run", 10), a.call("run", 20), b.call("run", 30), a.context(stats).state)
    1 2 1 [10, 20]
    """

    def __init__(self, module: str = "env", *, state: Callable[[], Any] | None = None) -> None:
        self.module = module
        self.state_factory = state
        self._functions: dict[str, HostFunction] = {}

    @typing.overload
    def function(self, fn: F, /) -> F: ...

    @typing.overload
    def function(
        self, fn: None = None, /, *, name: str | None = None, allow_overlap: bool = False
    ) -> Callable[[F], F]: ...

    def function(self, fn: Any = None, /, *, name: str | None = None, allow_overlap: bool = False) -> Any:
        """Decorator: declares `fn` as a host function, named `name` (default: its own name).

        By default an output array may not overlap another array of the same call (the guest traps
        with BoundsError); `allow_overlap=True` lets them alias, with numpy's semantics.
        Raises DeclarationError when the hints do not declare a guest signature.

        >>> import numpy as np
        >>> from typing import Annotated
        >>> from numpy.typing import NDArray
        >>> from bridge import Guest, In, Out, u32
        >>> host = HostFunctions()
        >>> @host.function
        ... def copy(
        ...     dst: Annotated[NDArray[np.uint8], Out("n")],
        ...     src: Annotated[NDArray[np.uint8], In("n")],
        ...     n: u32,
        ... ) -> None:
        ...     dst[:] = src
        >>> guest = Guest(b'''(module  ;; it re-exports the import, for this example to call
        ...   (func (export "copy") (import "env" "copy") (param i32 i32 i32))
        ...   (memory (export "memory") 1))''', hosts=[host])
        >>> guest.memory.write(0, b"abcdef")
        >>> guest.call("copy", 8, 0, 6)
        >>> guest.memory.read(8, 6)
        b'abcdef'
        >>> guest.call("copy", 2, 0, 6)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        bridge.errors.BoundsError: host function `copy`: parameters `dst` [0x2, 0x8) and `src` [0x0, 0x6)...
        >>> guest.close()
        """

        def register(f: F) -> F:
            self.add(_declare(f, name=name, module=self.module, allow_overlap=allow_overlap))
            return f

        return register(fn) if fn is not None else register

    def raw(
        self, name: str, params: Sequence[ScalarKind], results: Sequence[ScalarKind] = ()
    ) -> Callable[[F], F]:
        """Decorator, the escape hatch: `fn(ctx, *values)` gets the raw scalars (unsigned kinds masked).

        Pointers arrive as ints; check them with `ctx.view`. At most one result.

        >>> from bridge import Guest
        >>> host = HostFunctions()
        >>> @host.raw("peek", ["usize"], ["i32"])
        ... def peek(ctx: Context, address: int) -> int:
        ...     return int(ctx.view(address, 1)[0])  # checked like any declared array
        >>> guest = Guest(b'''(module (import "env" "peek" (func $peek (param i32) (result i32)))
        ...   (memory (export "memory") 1)
        ...   (data (i32.const 5) "*")
        ...   (func (export "run") (param i32) (result i32) (call $peek (local.get 0))))''', hosts=[host])
        >>> guest.call("run", 5)
        42
        >>> guest.call("run", -1)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        bridge.errors.BoundsError: host function `peek`: range is outside guest memory: pointer 0xffffffff...
        >>> guest.close()
        """
        if len(results) > 1:
            raise DeclarationError(f"`{name}`: at most one result")

        def register(f: F) -> F:
            ps = [_Param("ctx", "context")] + [
                _Param(f"arg{i}", "scalar", scalar=k) for i, k in enumerate(params)
            ]
            self.add(
                HostFunction(
                    f, ps, results[0] if results else None, name=name, module=self.module, allow_overlap=True
                )
            )
            return f

        return register

    def add(self, hf: HostFunction) -> None:
        if hf.name in self._functions:
            raise DeclarationError(f"`{hf.qualname}` is declared twice in this registry")
        self._functions[hf.name] = hf

    def __getitem__(self, name: str) -> HostFunction:
        return self._functions[name]

    def __contains__(self, name: object) -> bool:
        return name in self._functions

    def __iter__(self) -> Iterator[HostFunction]:
        return iter(self._functions.values())

    def __len__(self) -> int:
        return len(self._functions)

    def __repr__(self) -> str:
        return f"<HostFunctions {self.module!r}: {', '.join(self._functions)}>"
