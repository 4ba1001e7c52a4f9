"""Realm: the host-side LLM kernels (numpy reference implementations) that wasm guests call."""
