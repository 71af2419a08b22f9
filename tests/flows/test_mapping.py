"""`map_cached` keeps task results as JSON in the run, and trusts them only while they carry the job's
key and its outputs do: an edited, unreadable or foreign result is recomputed, never executed."""

import json

import pytest
from prefect import flow

from thresher.flows.mapping import Job, cached_task, map_cached, result_path, store_result
from thresher.storage.run_dir import RunDir


@cached_task(name="square")
def square_task(run_root: str, n: int, cache_key: str) -> dict:
    (RunDir(run_root).root / f"out-{n}.txt").write_text(f"{n * n} {cache_key}\n", encoding="utf-8")
    return {"n": n, "square": n * n, "rows": 1}


def outputs_carry_key(run: RunDir):
    def done(job: Job, _result: dict) -> bool:
        path = run.root / f"out-{job.args[1]}.txt"
        return path.is_file() and path.read_text(encoding="utf-8").split()[1] == job.cache_key
    return done


@flow(name="thresher-test-mapping")
def squares_flow(run_root: str, numbers: list[int]) -> list[dict]:
    run = RunDir(run_root)
    jobs = [Job((run_root, n), f"square-{n}@1") for n in numbers]
    return map_cached(run, square_task, jobs, label="squares", done=outputs_carry_key(run))


@pytest.fixture
def run(tmp_path, prefect_harness):
    run = RunDir(tmp_path / "run")
    run.init()
    return run


def test_results_are_json_and_reused(run):
    first = squares_flow(str(run.root), [2, 3])
    assert [r["square"] for r in first] == [4, 9] and not any(r.get("skipped") for r in first)
    stored = json.loads(result_path(run, "square-3@1").read_text(encoding="utf-8"))
    assert stored == {"cache_key": "square-3@1", "result": {"n": 3, "square": 9, "rows": 1}}
    mtimes = {p: p.stat().st_mtime_ns for p in run.root.glob("out-*.txt")}
    second = squares_flow(str(run.root), [2, 3])
    assert [(r["square"], r["skipped"], r["seconds"]) for r in second] == [(4, True, 0.0), (9, True, 0.0)]
    assert {p: p.stat().st_mtime_ns for p in run.root.glob("out-*.txt")} == mtimes
    # nothing in the run directory is a pickle
    for path in run.root.rglob("*"):
        if path.is_file():
            assert not path.read_bytes().startswith(b"\x80"), path


@pytest.mark.parametrize("tamper", ["garbage", "foreign key", "not a dict", "pickle record", "outputs gone"])
def test_a_result_that_cannot_be_trusted_is_recomputed(run, tamper):
    squares_flow(str(run.root), [2, 3])
    path = result_path(run, "square-3@1")
    if tamper == "garbage":
        path.write_bytes(b"\x80\x04\x95 not json")
    elif tamper == "foreign key":
        path.write_text(json.dumps({"cache_key": "square-4@1", "result": {"n": 3, "square": 1000, "rows": 1}}))
    elif tamper == "not a dict":
        path.write_text(json.dumps({"cache_key": "square-3@1", "result": [1, 2]}))
    elif tamper == "pickle record":  # what a Prefect result record that asks for pickle looks like
        path.write_text(json.dumps({"metadata": {"serializer": {"type": "pickle"}}, "result": "gAR9lC4="}))
    else:
        (run.root / "out-3.txt").unlink()
    results = squares_flow(str(run.root), [2, 3])
    assert results[0]["skipped"] is True
    assert results[1]["square"] == 9 and not results[1].get("skipped")
    assert json.loads(path.read_text())["result"]["square"] == 9


def test_a_result_json_cannot_hold_is_refused_before_writing(run):
    with pytest.raises(TypeError):
        store_result(run, "k", {"path": run.root})
    assert not result_path(run, "k").exists()
