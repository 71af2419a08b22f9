"""Pushing an export with the real huggingface_hub client to a fake Hub on 127.0.0.1.

huggingface_hub chooses the upload protocol itself: with hf_xet installed (as here) and
HF_HUB_DISABLE_XET unset, `upload_folder` runs its streamed multi-commit pipeline and sends every
file the Hub marks "lfs" to Xet storage, which no local fake can stand in for; otherwise large
files go through the Git LFS batch API. `HF_HUB_DISABLE_XET` is read when huggingface_hub is
imported, so the tests set `huggingface_hub.constants.HF_HUB_DISABLE_XET` instead:

- the LFS tests disable Xet: Parquet shards travel through the LFS batch API + PUT, the rest
  inline in the NDJSON commit;
- the pipeline test keeps Xet enabled (the default path) with a fake that marks every file
  "regular", so the pipeline runs without Xet storage.
"""

from __future__ import annotations

import logging

import pytest

from tests.export.fake_hub import FakeHub, Repo
from thresher.export import export_selection
from thresher.export.hub import HubError, push_to_hub

TOKEN = "hf_thresherTestToken0123456789abcdef"

# huggingface_hub's LFS upload passes a file object as `data=`, which httpx2 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture
def hub_env(monkeypatch, tmp_path):
    """Point huggingface_hub at nothing but 127.0.0.1, with no ambient token."""
    import huggingface_hub.constants as constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-saved-token"))
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(tmp_path / "agent-harnesses.json"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    return constants


@pytest.fixture
def fake_hub(hub_env, monkeypatch):
    with FakeHub() as hub:
        # Anything the client sends to its default endpoint (e.g. the agent registry it fetches
        # for its User-Agent) lands here too, never on huggingface.co.
        monkeypatch.setattr(hub_env, "ENDPOINT", hub.endpoint)
        yield hub


@pytest.fixture(scope="module")
def export_dir(export_run):
    return export_selection(export_run, "docs-en", export_run / "to-push", shard_rows=60)


def local_files(directory):
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_push_uploads_every_file_private_with_the_token_never_shown(export_dir, fake_hub, caplog, capfd):
    from huggingface_hub.utils import logging as hf_logging

    caplog.set_level(logging.DEBUG)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_debug()
    try:
        url = push_to_hub(export_dir, "curator/web-en", token=TOKEN, endpoint=fake_hub.endpoint)
    finally:
        hf_logging.set_verbosity(verbosity)
    out, err = capfd.readouterr()

    assert url == f"{fake_hub.endpoint}/datasets/curator/web-en"
    assert fake_hub.create_payloads == [
        {"name": "web-en", "organization": "curator", "visibility": "private", "type": "dataset"}]
    assert fake_hub.repos["curator/web-en"].private
    expected = local_files(export_dir)
    assert len([p for p in expected if p.startswith("data/")]) > 2
    assert fake_hub.files("curator/web-en") == expected  # every file, byte for byte
    assert fake_hub.repos["curator/web-en"].lfs_paths == {p for p in expected if p.endswith(".parquet")}

    calls = {(r.method, "/lfs-upload/{oid}" if r.path.startswith("/lfs-upload/") else r.path)
             for r in fake_hub.requests}
    assert {("POST", "/api/repos/create"), ("GET", "/api/datasets/curator/web-en"),
            ("POST", "/api/validate-yaml"), ("POST", "/api/datasets/curator/web-en/preupload/main"),
            ("POST", "/datasets/curator/web-en.git/info/lfs/objects/batch"), ("PUT", "/lfs-upload/{oid}"),
            ("POST", "/api/datasets/curator/web-en/commit/main")} <= calls
    # The client asked for nothing the fake lacks, bar the agent registry it fetches for its User-Agent.
    assert set(fake_hub.unserved) <= {("GET", "/api/agent-harnesses")}
    for request in fake_hub.requests:
        if request.path.startswith(("/api/repos", "/api/datasets", "/datasets/", "/api/validate")):
            assert request.authorization == f"Bearer {TOKEN}", request.path
        elif request.path.startswith("/lfs-upload/"):
            assert request.authorization is None  # storage URLs never get the Hub token
    assert "Request" in caplog.text  # huggingface_hub's debug log was on and captured ...
    for text in (caplog.text, out, err):
        assert TOKEN not in text  # ... and the token is nowhere in logs, stdout or stderr
        assert TOKEN[3:20] not in text

    # Pushing the same export again changes nothing: the Hub already has every file.
    push_to_hub(export_dir, "curator/web-en", token=TOKEN, endpoint=fake_hub.endpoint)
    assert len(fake_hub.repos["curator/web-en"].commits) == 1
    assert fake_hub.files("curator/web-en") == expected


def test_streamed_pipeline_repush_drops_stale_shards(export_run, fake_hub, hub_env, monkeypatch):
    monkeypatch.setattr(hub_env, "HF_HUB_DISABLE_XET", False)  # huggingface_hub's default path
    fake_hub.lfs_suffixes = ()  # every file "regular": the pipeline needs no Xet storage
    out = export_run / "repush"
    export_selection(export_run, "docs-en", out, shard_rows=40)
    push_to_hub(out, "curator/repush", token=TOKEN, endpoint=fake_hub.endpoint, private=False)
    assert fake_hub.create_payloads[-1]["visibility"] == "public"
    first = local_files(out)
    assert fake_hub.files("curator/repush") == first

    export_selection(export_run, "docs-en", out, shard_rows=100)  # fewer, larger shards
    second = local_files(out)
    assert len([p for p in second if p.startswith("data/")]) < len([p for p in first if p.startswith("data/")])
    push_to_hub(out, "curator/repush", token=TOKEN, endpoint=fake_hub.endpoint, private=False)
    assert fake_hub.files("curator/repush") == second  # old shards deleted, nothing else left behind
    assert fake_hub.repos["curator/repush"].lfs_paths == set()


def test_branch_and_refusal_to_publish_into_a_public_repo(export_dir, fake_hub):
    push_to_hub(export_dir, "curator/branches", token=TOKEN, endpoint=fake_hub.endpoint, revision="v1")
    repo = fake_hub.repos["curator/branches"]
    assert repo.branches["main"] == {}
    assert repo.branches["v1"] == local_files(export_dir)

    fake_hub.repos["curator/already-public"] = Repo("curator/already-public", private=False)
    with pytest.raises(HubError, match="already exists and is public") as failure:
        push_to_hub(export_dir, "curator/already-public", token=TOKEN, endpoint=fake_hub.endpoint)
    assert TOKEN not in str(failure.value)
    assert fake_hub.repos["curator/already-public"].commits == []


def test_token_from_env_from_prefect_secret_or_none(export_dir, fake_hub, monkeypatch, prefect_harness, caplog,
                                                    capfd):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HubError, match="no Hugging Face token"):
        push_to_hub(export_dir, "curator/no-token", endpoint=fake_hub.endpoint)
    assert "curator/no-token" not in fake_hub.repos

    monkeypatch.setenv("HF_TOKEN", "hf_fromTheEnvironment42")
    push_to_hub(export_dir, "curator/env-token", endpoint=fake_hub.endpoint)
    assert {r.authorization for r in fake_hub.requests if r.path.startswith("/api/repos")} == {
        "Bearer hf_fromTheEnvironment42"}

    from prefect.blocks.system import Secret

    Secret(value="hf_fromAPrefectSecret7").save("thresher-test-hf-token", overwrite=True)
    fake_hub.requests.clear()
    from thresher.flows.export import export_flow, secret_token

    result = export_flow(str(export_dir.parent), "docs-en", "curator/from-flow",
                         out_dir=str(export_dir.parent / "flow-push"), hf_token_secret="thresher-test-hf-token",
                         endpoint=fake_hub.endpoint)
    assert result["repo_url"] == f"{fake_hub.endpoint}/datasets/curator/from-flow" and result["private"]
    assert {r.authorization for r in fake_hub.requests if r.path.startswith("/api/")} == {
        "Bearer hf_fromAPrefectSecret7"}  # the secret block wins over HF_TOKEN
    assert fake_hub.files("curator/from-flow") == local_files(export_dir.parent / "flow-push")
    with pytest.raises(HubError, match="cannot load the Prefect Secret block 'no-such-block'"):
        secret_token("no-such-block")
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert "hf_fromAPrefectSecret7" not in text and "hf_fromTheEnvironment42" not in text


@pytest.mark.usefixtures("prefect_for_cli")
def test_export_command_pushes_public_with_the_token_from_the_environment(export_run, fake_hub, monkeypatch,
                                                                           tmp_path):
    import typer
    from typer.testing import CliRunner

    from thresher.cli.export import export

    app = typer.Typer()
    app.command()(export)
    app.command("noop")(lambda: None)  # two commands, so `export` is addressed by name as in thresher's CLI
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    out = tmp_path / "pushed"
    result = CliRunner().invoke(app, ["export", str(export_run), "docs-en", "--out", str(out), "--push",
                                      "curator/from-cli", "--public", "--endpoint", fake_hub.endpoint,
                                      "--revision", "v2", "--shard-rows", "60"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "curator/from-cli" in result.output and TOKEN not in result.output
    assert fake_hub.create_payloads[-1]["visibility"] == "public" and not fake_hub.repos["curator/from-cli"].private
    assert fake_hub.repos["curator/from-cli"].branches["v2"] == local_files(out)
