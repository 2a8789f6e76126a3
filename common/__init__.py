"""The bottom of the house: what every package may import and which imports none of them.

``paths`` (where tickwire keeps its runtime state and finds the repository's data) and
``netns`` (entering and naming network namespaces). Nothing here imports ``appliance``,
``dpdk``, ``xdp`` or ``tuning``; the import-linter contracts in pyproject.toml keep it so.
"""
