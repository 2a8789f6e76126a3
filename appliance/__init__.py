"""tickwire's control plane: configuration, lifecycle, the lab, the CLI."""

__version__ = "0.1.0"
__all__ = ["__version__"]
