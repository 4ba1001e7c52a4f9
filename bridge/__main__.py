from bridge.cli import entrypoint

entrypoint()
