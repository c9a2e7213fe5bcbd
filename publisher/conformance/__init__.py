"""Runtime conformance: every file loaded and run in each runtime it is said to serve, each
in an isolated environment created once and cached (envs.py), through a small probe script
that imports nothing of ours (probe.py); the matrix and its claims live in matrix.py."""
