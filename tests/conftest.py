"""Shared test setup: the lab package, the tools and this collection (as ansible_collections.hakit.cluster) on sys.path."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lab"))
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "bench"))
# .collections/ansible_collections/hakit/cluster links to the repository root.
sys.path.insert(0, str(ROOT / ".collections"))
