"""Unit tests import the collection's plugins as ansible_collections.hakit.cluster (via .collections)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".collections"))
