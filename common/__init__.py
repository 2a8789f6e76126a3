"""The bottom of the house: what every package may import and which imports none of them.

``paths`` (where tickwire keeps its runtime state and finds the repository's data),
``netns`` (entering and naming network namespaces), ``extensions`` (loading a compiled
extension, and the one error a missing one raises) and ``operator`` (who is at the
keyboard). Nothing here imports ``appliance``, ``dpdk``, ``xdp`` or ``tuning``; the
import-linter contracts in pyproject.toml keep it so.
"""
