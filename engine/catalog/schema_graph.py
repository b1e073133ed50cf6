"""Schema version 2: knowledge-graph tables (entities, aliases, edges with provenance)."""
from __future__ import annotations

__all__ = ["GRAPH_V2"]

# Placeholder until the graph lands: a migration must exist so version numbers stay fixed.
GRAPH_V2 = """
CREATE TABLE IF NOT EXISTS _schema_v2_placeholder (x INTEGER);
"""
