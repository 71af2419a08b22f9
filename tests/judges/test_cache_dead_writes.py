"""A judgment-cache part an older version was killed writing leaves a temp file no later write
clears (part names were unique): the judge stage removes them when it starts, and only them. The
SQLite store itself leaves no temp files (a killed transaction is rolled back on the next open)."""

from thresher.judges.cache import JudgmentCache, remove_dead_writes


def test_dead_temp_parts_are_removed_and_the_store_kept(tmp_path):
    cache = JudgmentCache(tmp_path, "judge_x")
    cache.put([("k1", "model", "v1", "h1", {"score": 4.0, "raw": "4"})])
    finished = sorted(cache.dir.iterdir())
    assert cache.parts() == [cache.dir / "judgments.sqlite"]
    assert remove_dead_writes(tmp_path) == 0, "the store's own files were taken for debris"
    dead = cache.dir / "part-0-123-abc.parquet.tmp-123"
    dead.write_bytes(b"PAR1 half written")
    assert remove_dead_writes(tmp_path) == 1
    assert not dead.exists() and sorted(cache.dir.iterdir()) == finished
    assert set(JudgmentCache(tmp_path, "judge_x").get(["k1"])) == {"k1"}
