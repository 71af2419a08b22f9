"""A judgment-cache part killed mid-write leaves a temp file no later write clears (part names are
unique): the judge stage removes them when it starts, and only them."""

from thresher.judges.cache import JudgmentCache, remove_dead_writes


def test_dead_temp_parts_are_removed_and_finished_parts_kept(tmp_path):
    cache = JudgmentCache(tmp_path, "judge_x")
    cache.put([("k1", "model", "v1", "h1", {"score": 4.0, "raw": "4"})])
    finished = cache.parts()
    assert len(finished) == 1
    dead = finished[0].with_name("part-0-123-abc.parquet.tmp-123")
    dead.write_bytes(b"PAR1 half written")
    assert remove_dead_writes(tmp_path) == 1
    assert not dead.exists() and cache.parts() == finished
    assert set(cache.get(["k1"])) == {"k1"}
