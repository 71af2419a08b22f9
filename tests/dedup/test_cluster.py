"""Out-of-core clustering in DuckDB against plain in-memory union-find."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pyarrow as pa
import pytest

from thresher.dedup.cluster import aggregate_partitions, candidate_edges, connect, connected_components, rank_members


def union_find_labels(n: int, edges: np.ndarray) -> np.ndarray:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges.tolist():
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)])


@pytest.fixture
def con(tmp_path):
    connection = connect(tmp_path / "spill", memory_limit="512MB", threads=2)
    yield connection
    connection.close()


def _load_edges(con, edges: np.ndarray, ids: np.ndarray) -> None:
    """Edges between node ids `ids[a]`, `ids[b]` (ids arbitrary int64) as (src > dst)."""
    a, b = ids[edges[:, 0]], ids[edges[:, 1]]
    keep = a != b
    table = pa.table({"src": np.maximum(a, b)[keep], "dst": np.minimum(a, b)[keep]})
    con.register("edges_in", table)
    con.execute("CREATE OR REPLACE TABLE edges AS SELECT DISTINCT src, dst FROM edges_in")
    con.unregister("edges_in")


def _graphs():
    rng = np.random.default_rng(7)
    n = 3000
    path = np.stack([np.arange(n - 1), np.arange(1, n)], axis=1)
    yield "path in id order", n, path
    perm = rng.permutation(n)
    yield "path in random id order", n, np.stack([perm[:-1], perm[1:]], axis=1)
    yield "two interleaved paths", n, np.stack([np.arange(n - 2), np.arange(2, n)], axis=1)
    yield "star", n, np.stack([np.zeros(n - 1, int), np.arange(1, n)], axis=1)
    for density in (0.3, 0.6, 1.2):
        yield f"random graph, {density} edges/node", n, rng.integers(0, n, size=(int(n * density), 2))
    cycles = [np.stack([np.arange(s, s + 50), np.r_[np.arange(s + 1, s + 50), s]], axis=1) for s in range(0, n, 50)]
    yield "cycles", n, np.concatenate(cycles)
    tree = np.stack([np.arange(1, n), rng.integers(0, np.arange(1, n))], axis=1)
    yield "random tree", n, tree


@pytest.mark.parametrize(("name", "n", "edges"), list(_graphs()), ids=[g[0] for g in _graphs()])
def test_components_match_union_find(con, name, n, edges):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    ids = rng.choice(2**62, size=n, replace=False).astype(np.int64) - 2**61  # arbitrary signed ids
    _load_edges(con, edges, ids)
    stats = connected_components(con, "edges", "components")
    got = dict(con.execute("SELECT node, label FROM components").fetchall())
    expected = union_find_labels(n, edges)
    # the label of a component is its minimum node id
    minimum = {}
    for i, root in enumerate(expected):
        minimum[root] = min(minimum.get(root, ids[i]), ids[i])
    for i in range(n):
        assert got.get(int(ids[i]), int(ids[i])) == minimum[expected[i]]
    assert stats["components"] == len({expected[i] for i in range(n) if int(ids[i]) in got})
    # hooking halves the number of trees per round; pointer jumping halves depths
    assert stats["rounds"] <= 2 * math.ceil(math.log2(n)), stats


def test_a_long_path_converges_in_logarithmic_rounds(con):
    n = 100_000
    ids = np.random.default_rng(1).permutation(n).astype(np.int64)
    _load_edges(con, np.stack([np.arange(n - 1), np.arange(1, n)], axis=1), ids)
    stats = connected_components(con, "edges", "components")
    assert stats["components"] == 1 and stats["nodes"] == n
    assert stats["rounds"] <= math.ceil(math.log2(n)) and stats["shortcut_steps"] <= 4 * math.ceil(math.log2(n))
    print(stats)


def _keys_table(con, nodes: np.ndarray, keys: np.ndarray, current: np.ndarray | None = None) -> None:
    columns = {"node": nodes, "is_current": current if current is not None else np.ones(len(nodes), bool)}
    columns |= {f"band_{b:02d}": keys[:, b] for b in range(keys.shape[1])}
    con.register("keys_in", pa.table(columns))
    con.execute("CREATE OR REPLACE TABLE keys AS SELECT * FROM keys_in")
    con.unregister("keys_in")


@pytest.mark.parametrize("partitions", [1, 4])
def test_one_huge_bucket_gives_a_star_not_a_clique(con, partitions):
    n = 20_000  # a clique would be 2e8 pairs per band
    nodes = np.arange(n, dtype=np.int64) * 7 + 3
    keys = np.zeros((n, 3), dtype=np.int64)
    keys[:, 2] = np.arange(n)  # band 2: all distinct
    _keys_table(con, nodes, keys)
    stats = candidate_edges(con, "keys", 3, partitions=partitions)
    assert stats["band_edges"] == 2 * (n - 1) and stats["edges"] == n - 1
    assert con.execute("SELECT count(*) FROM candidates WHERE dst <> 3 OR src <= dst").fetchall() == [(0,)]


@pytest.mark.parametrize("partitions", [1, 2, 8])
def test_candidate_edges_link_each_bucket_to_its_minimum(con, partitions):
    rng = np.random.default_rng(5)
    n, bands = 5000, 4
    nodes = rng.choice(2**40, size=n, replace=False).astype(np.int64)
    keys = rng.integers(0, 1500, size=(n, bands)).astype(np.int64) * 1_000_003
    _keys_table(con, nodes, keys)
    candidate_edges(con, "keys", bands, partitions=partitions)
    got = set(con.execute("SELECT src, dst FROM candidates").fetchall())
    expected = set()
    for b in range(bands):
        buckets: dict = {}
        for node, key in zip(nodes.tolist(), keys[:, b].tolist()):
            buckets.setdefault(key, []).append(node)
        for members in buckets.values():
            root = min(members)
            expected |= {(m, root) for m in members if m != root}
    assert got == expected


def test_prior_only_buckets_are_skipped_when_required(con):
    nodes = np.array([1, 2, 3, 4], dtype=np.int64)
    keys = np.array([[10], [10], [20], [20]], dtype=np.int64)
    _keys_table(con, nodes, keys, current=np.array([False, False, True, False]))
    candidate_edges(con, "keys", 1, require_current=True)
    assert con.execute("SELECT src, dst FROM candidates").fetchall() == [(4, 3)]


def test_aggregate_partitions_grow_with_rows():
    assert [aggregate_partitions(n) for n in (10, 4_000_000, 4_000_001, 10_000_000, 100_000_000)] == [1, 1, 2, 4, 32]


def _members(con, rows):
    con.execute("CREATE OR REPLACE TABLE members (label BIGINT, node BIGINT, doc_id VARCHAR, run_idx INTEGER, "
                "score DOUBLE)")
    con.executemany("INSERT INTO members VALUES (?, ?, ?, ?, ?)", rows)


def _survivors(con) -> dict:
    return dict(con.execute("SELECT label, survivor_id FROM ranked GROUP BY ALL").fetchall())


def test_survivor_rules(con):
    _members(con, [
        (1, 11, "b", 0, 5.0), (1, 12, "a", 0, 1.0), (1, 13, "c", 0, 5.0),      # score tie between b and c
        (2, 21, "x", 0, None), (2, 22, "w", 0, None),                          # no scores at all
        (3, 31, "m", 0, 9.0), (3, 32, "n", 1, None), (3, 33, "z", 2, None),    # prior runs win
        (4, 41, "q", 0, 2.0), (4, 42, "p", 0, None),                           # NULL sorts last
    ])
    rank_members(con, "members", "ranked", by_score=None)
    assert _survivors(con) == {1: "a", 2: "w", 3: "n", 4: "p"}
    rank_members(con, "members", "ranked", by_score="highest")
    assert _survivors(con) == {1: "b", 2: "w", 3: "n", 4: "q"}
    rank_members(con, "members", "ranked", by_score="lowest")
    assert _survivors(con) == {1: "a", 2: "w", 3: "n", 4: "q"}
    rows = con.execute("SELECT doc_id, cluster_id, cluster_size, is_duplicate FROM ranked ORDER BY doc_id").fetchall()
    assert rows[0] == ("a", "a", 3, False) and ("m", "m", 3, True) in rows
    assert con.execute("SELECT count(*) FROM ranked WHERE NOT is_duplicate").fetchall() == [(4,)]
