"""Graph algorithms over the stored knowledge graph, through NetworkX.

The stored graph is a multigraph with provenance (one edge per video, segment and
extractor). For algorithms it is folded into a simple undirected weighted graph:
nodes ``e<id>`` (entities) and ``v<key>`` (videos), one edge per node pair whose
weight sums the stored weights times confidences and whose ``relations`` lists what
joined them. Neighbourhoods of one entity are read from SQL (two hops through its
videos), so drawing one does not load the whole library.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Iterable, Sequence

import networkx as nx

from engine.catalog import Catalog
from engine.errors import InputError, NotFoundError, UnknownNameError
from engine.graph.store import EdgeRecord, GraphStore

__all__ = [
    "entity_node",
    "video_node",
    "to_networkx",
    "neighbourhood",
    "shortest_path",
    "communities",
    "centrality",
    "CENTRALITY",
    "export_graph",
    "EXPORT_FORMATS",
    "draw_png",
]


def entity_node(entity_id: int) -> str:
    return f"e{int(entity_id)}"


def video_node(video_key: int) -> str:
    return f"v{int(video_key)}"


def _node(end: tuple[str, int]) -> str:
    return entity_node(end[1]) if end[0] == "entity" else video_node(end[1])


def _fold(graph: nx.Graph, edges: Iterable[EdgeRecord]) -> None:
    for e in edges:
        a, b = _node(e.src), _node(e.dst)
        if a == b:
            continue
        w = float(e.weight) * float(e.confidence)
        if graph.has_edge(a, b):
            d = graph[a][b]
            d["weight"] += w
            d["count"] += 1
            if e.relation not in d["relations"]:
                d["relations"] = d["relations"] + "," + e.relation
        else:
            graph.add_edge(a, b, weight=w, count=1, relations=e.relation)


def _label_nodes(graph: nx.Graph, catalog: Catalog, store: GraphStore) -> None:
    eids = [int(n[1:]) for n in graph.nodes if n.startswith("e")]
    vkeys = [int(n[1:]) for n in graph.nodes if n.startswith("v")]
    ents = {}
    for i in range(0, len(eids), 500):
        chunk = eids[i : i + 500]
        rows = store._c().execute(
            f"SELECT * FROM entities WHERE id IN ({','.join('?' * len(chunk))})", chunk
        ).fetchall()
        ents.update({e.id: e for e in store._entities(rows, counts=False)})
    for eid, ent in ents.items():
        graph.nodes[entity_node(eid)].update(
            kind="entity", type=ent.type, name=ent.name, label=ent.label(), entity_id=eid,
            aliases=json.dumps([a.surface for a in ent.aliases], ensure_ascii=False),
        )
    for key, v in catalog.videos_by_keys(vkeys).items():
        graph.nodes[video_node(key)].update(
            kind="video", type="video", name=v.title or v.source, label=v.title or Path(v.source).name,
            video_id=v.video_id, source=v.source,
        )


def to_networkx(catalog: Catalog, *, tenant: str | None = None) -> nx.Graph:
    """The whole (tenant's) graph, folded into a weighted undirected graph with labelled nodes."""
    store = GraphStore(catalog)
    g = nx.Graph()
    _fold(g, store.edges(tenant=tenant))
    _label_nodes(g, catalog, store)
    return g


def neighbourhood(catalog: Catalog, entity_id: int, *, tenant: str | None = None, max_videos: int = 30,
                  max_entities: int = 40) -> nx.Graph:
    """An entity, its videos (strongest ``max_videos``), and the other entities on
    those videos or joined to it directly (heaviest ``max_entities``)."""
    store = GraphStore(catalog)
    ent = store.get_entity(entity_id, tenant=tenant)
    vids = [v.video_key for v in store.entity_videos(ent.id, limit=max_videos)]
    neigh = [n.entity.id for n in store.neighbours(ent.id, limit=max_entities)]
    keep_e = {ent.id, *neigh}
    keep_v = set(vids)
    g = nx.Graph()
    g.add_node(entity_node(ent.id))
    for e in store.edges(entity_ids=sorted(keep_e)):
        ends = [e.src, e.dst]
        if all((k == "entity" and i in keep_e) or (k == "video" and i in keep_v) for k, i in ends):
            _fold(g, [e])
    _label_nodes(g, catalog, store)
    g.graph["center"] = entity_node(ent.id)
    return g


def shortest_path(graph: nx.Graph, a: str, b: str) -> list[str]:
    """Node ids on a shortest path (hops; heavier links are not preferred: a path is an
    explanation, and fewer hops read best). NotFoundError when none exists."""
    for n in (a, b):
        if n not in graph:
            raise NotFoundError(f"node {n!r} is not in the graph", hint="nodes are e<entity id> or v<video key>")
    try:
        return list(nx.shortest_path(graph, a, b))
    except nx.NetworkXNoPath:
        raise NotFoundError(f"no path between {a} and {b}") from None


def communities(graph: nx.Graph, *, seed: int = 0, resolution: float = 1.0) -> list[list[str]]:
    """Louvain communities (weighted, seeded so the answer is repeatable), largest first."""
    if graph.number_of_edges() == 0:
        return [[n] for n in sorted(graph.nodes)]
    parts = nx.community.louvain_communities(graph, weight="weight", resolution=resolution, seed=seed)
    return sorted((sorted(p) for p in parts), key=lambda p: (-len(p), p[0]))


def _degree(g: nx.Graph) -> dict:
    return dict(g.degree(weight="weight"))


CENTRALITY = {
    "degree": _degree,
    "pagerank": lambda g: nx.pagerank(g, weight="weight"),
    "betweenness": lambda g: nx.betweenness_centrality(g, weight=None, k=min(200, len(g)) or None, seed=0),
    "eigenvector": lambda g: nx.eigenvector_centrality_numpy(g, weight="weight"),
}


def centrality(graph: nx.Graph, kind: str = "pagerank", *, top: int = 20,
               kinds: Sequence[str] = ("entity",)) -> list[tuple[str, float]]:
    """The ``top`` nodes of the given kinds (entity, video) by a centrality measure."""
    fn = CENTRALITY.get(kind)
    if fn is None:
        raise UnknownNameError("centrality", kind, list(CENTRALITY))
    if len(graph) == 0:
        return []
    scores = fn(graph)
    rows = [(n, float(s)) for n, s in scores.items() if graph.nodes[n].get("kind", "entity") in kinds]
    rows.sort(key=lambda x: (-x[1], x[0]))
    return rows[:top]


def _json(graph: nx.Graph) -> str:
    data = nx.node_link_data(graph, edges="edges")
    return json.dumps(data, ensure_ascii=False, indent=1, default=str)


def _graphml(graph: nx.Graph) -> str:
    buf = io.BytesIO()
    clean = nx.Graph()
    clean.graph.update({k: str(v) for k, v in graph.graph.items()})
    for n, d in graph.nodes(data=True):
        clean.add_node(n, **{k: v for k, v in d.items() if v is not None})
    clean.add_edges_from(graph.edges(data=True))
    nx.write_graphml(clean, buf, encoding="utf-8")
    return buf.getvalue().decode("utf-8")


EXPORT_FORMATS = {"json": _json, "graphml": _graphml}


def export_graph(graph: nx.Graph, fmt: str) -> str:
    """Serialise a graph as GraphML or node-link JSON (readable by NetworkX, Gephi, d3)."""
    fn = EXPORT_FORMATS.get(fmt)
    if fn is None:
        raise UnknownNameError("export format", fmt, list(EXPORT_FORMATS))
    return fn(graph)


_COLOURS = {"person": "#e4572e", "title": "#7a5195", "topic": "#2e86ab", "organisation": "#f3a712",
            "place": "#3bb273", "visual_concept": "#9aa0a6", "video": "#cfd8dc"}


def draw_png(graph: nx.Graph, *, title: str | None = None, size: tuple[float, float] = (9.0, 7.0),
             dpi: int = 100) -> bytes:
    """A PNG picture of a (small) graph: nodes coloured by type, sized by weighted
    degree, the centre (``graph.graph['center']``) outlined; seeded layout."""
    # A bare Figure (no pyplot): no global backend state, safe in server threads.
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if len(graph) == 0:
        raise InputError("the graph to draw is empty", hint="pick an entity that has videos")
    if len(graph) > 400:
        raise InputError(f"the graph has {len(graph)} nodes, too many to draw legibly",
                         hint="draw one entity's neighbourhood")
    fig = Figure(figsize=size, dpi=dpi)
    ax = fig.add_subplot(111)
    pos = nx.spring_layout(graph, seed=0, weight="weight", k=1.5 / max(1, len(graph)) ** 0.5)
    deg = dict(graph.degree(weight="weight"))
    center = graph.graph.get("center")
    nodes = list(graph.nodes)
    colours = [_COLOURS.get(graph.nodes[n].get("type", "video"), "#cccccc") for n in nodes]
    sizes = [300 + 120 * min(10.0, deg.get(n, 0.0)) for n in nodes]
    widths = [3.0 if n == center else 0.5 for n in nodes]
    nx.draw_networkx_edges(graph, pos, ax=ax, alpha=0.35,
                           width=[0.5 + min(4.0, d.get("weight", 1.0)) for _, _, d in graph.edges(data=True)])
    nx.draw_networkx_nodes(graph, pos, ax=ax, nodelist=nodes, node_color=colours, node_size=sizes,
                           edgecolors="#222222", linewidths=widths)
    labels = {n: _ascii_safe(str(graph.nodes[n].get("label", n)))[:28] for n in nodes}
    nx.draw_networkx_labels(graph, pos, labels=labels, ax=ax, font_size=8)
    present = sorted({graph.nodes[n].get("type", "video") for n in nodes})
    ax.legend(handles=[Patch(color=_COLOURS.get(t, "#cccccc"), label=t) for t in present], loc="lower left",
              fontsize=8, frameon=False)
    if title:
        ax.set_title(_ascii_safe(title))
    ax.set_axis_off()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _ascii_safe(s: str) -> str:
    """Matplotlib's bundled DejaVu has no CJK glyphs: keep such labels readable as
    their code points' count rather than rows of empty boxes."""
    if all(ord(ch) < 0x2E80 for ch in s):
        return s
    kept = "".join(ch for ch in s if ord(ch) < 0x2E80).strip()
    return kept or f"[{len(s)} CJK chars]"
