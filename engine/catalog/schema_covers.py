"""Schema version 3: covers (variants, scores) and the bandit's impressions and clicks."""
from __future__ import annotations

__all__ = ["COVERS_V3"]

# Placeholder until covers land: a migration must exist so version numbers stay fixed.
COVERS_V3 = """
CREATE TABLE IF NOT EXISTS _schema_v3_placeholder (x INTEGER);
"""
