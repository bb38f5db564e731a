"""vmc's benchmarks against its peers: ``python -m bench`` (see bench/README.md).

Importing this package has no side effects; ``python -m bench`` sets the single-thread
environment before anything imports a peer.
"""
