"""Moved to :mod:`common.paths`; this re-export goes once the last importer is switched."""
from common.paths import ROOT, RUN_DIR, sample_itch, shared_data  # noqa: F401
