"""A stand-in for the Hugging Face Hub: just the endpoints huggingface_hub's upload path calls.

It runs on 127.0.0.1 in a background thread (uvicorn + starlette), keeps every repository's files
in memory, and records each request (method, path, Authorization header) so tests can check what
the real client sent. Endpoints:

    POST /api/repos/create                                   create_repo (409 if it exists)
    GET  /api/{type}s/{ns}/{name}[/revision/{rev}]           repo_info
    POST /api/{type}s/{ns}/{name}/branch/{branch}            create_branch
    GET  /api/{type}s/{ns}/{name}/tree/{rev}[/{path}]        list_repo_tree (delete_patterns)
    POST /api/validate-yaml                                  README.md metadata check
    POST /api/{type}s/{ns}/{name}/preupload/{rev}            upload mode per file: *.parquet -> lfs
    POST /{type}s/{ns}/{name}.git/info/lfs/objects/batch     Git LFS batch API (basic transfer)
    PUT  /lfs-upload/{oid}                                   the LFS object itself (sha256 checked)
    POST /api/{type}s/{ns}/{name}/commit/{rev}               NDJSON commit
    GET  /api/whoami-v2                                      whoami

Anything else answers 404 and is recorded, so a test sees when the client wanted more.
Only dataset repos ("datasets") are served; that is all thresher pushes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def git_blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Repo:
    repo_id: str
    private: bool
    branches: dict[str, dict[str, bytes]] = field(default_factory=lambda: {"main": {}})
    lfs_paths: set[str] = field(default_factory=set)
    commits: list[dict] = field(default_factory=list)

    def head(self, branch: str = "main") -> str:
        mine = [c for c in self.commits if c["branch"] == branch]
        return mine[-1]["oid"] if mine else "0" * 40


@dataclass
class RecordedRequest:
    method: str
    path: str
    authorization: str | None
    query: str = ""


class FakeHub:
    """`with FakeHub() as hub:` serves on `hub.endpoint` until the block ends."""

    def __init__(self, lfs_suffixes: tuple[str, ...] = (".parquet",)):
        self.lfs_suffixes = lfs_suffixes
        self.repos: dict[str, Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[RecordedRequest] = []
        self.create_payloads: list[dict] = []
        self.unserved: list[tuple[str, str]] = []  # (method, path) answered by the 404 fallback
        self._lock = threading.Lock()
        self.app = Starlette(routes=[
            Route("/api/repos/create", self.create_repo, methods=["POST"]),
            Route("/api/validate-yaml", self.validate_yaml, methods=["POST"]),
            Route("/api/whoami-v2", self.whoami, methods=["GET"]),
            Route("/api/datasets/{ns}/{name}/preupload/{rev:path}", self.preupload, methods=["POST"]),
            Route("/api/datasets/{ns}/{name}/commit/{rev:path}", self.commit, methods=["POST"]),
            Route("/api/datasets/{ns}/{name}/branch/{branch:path}", self.create_branch, methods=["POST"]),
            Route("/api/datasets/{ns}/{name}/tree/{rest:path}", self.tree, methods=["GET"]),
            Route("/api/datasets/{ns}/{name}/revision/{rev:path}", self.repo_info, methods=["GET"]),
            Route("/api/datasets/{ns}/{name}", self.repo_info, methods=["GET"]),
            Route("/datasets/{ns}/{name}.git/info/lfs/objects/batch", self.lfs_batch, methods=["POST"]),
            Route("/lfs-upload/{oid}", self.lfs_upload, methods=["PUT"]),
            Route("/{rest:path}", self.not_found, methods=["GET", "POST", "PUT", "DELETE", "HEAD"]),
        ])
        self.app.add_middleware(_Recorder, hub=self)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.endpoint = ""

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> FakeHub:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake hub did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=10)

    # -- helpers for tests --------------------------------------------------------------------

    def files(self, repo_id: str, branch: str = "main") -> dict[str, bytes]:
        return dict(self.repos[repo_id].branches[branch])

    def calls(self) -> list[tuple[str, str]]:
        """(method, path) of every request, in order."""
        return [(r.method, r.path) for r in self.requests]

    # -- endpoints ----------------------------------------------------------------------------

    def _repo(self, request: Request) -> Repo | None:
        return self.repos.get(f"{request.path_params['ns']}/{request.path_params['name']}")

    @staticmethod
    def _missing() -> JSONResponse:
        return JSONResponse({"error": "Repository not found"}, status_code=404,
                            headers={"X-Error-Code": "RepoNotFound"})

    async def create_repo(self, request: Request) -> JSONResponse:
        payload = await request.json()
        self.create_payloads.append(payload)
        if payload.get("type") != "dataset":
            return JSONResponse({"error": "this fake serves dataset repos only"}, status_code=400)
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        url = f"{self.endpoint}/datasets/{repo_id}"
        with self._lock:
            if repo_id in self.repos:
                return JSONResponse({"error": "You already created this dataset repo", "url": url}, status_code=409)
            self.repos[repo_id] = Repo(repo_id, private=payload.get("visibility") == "private")
        return JSONResponse({"url": url, "name": repo_id, "id": repo_id})

    async def repo_info(self, request: Request) -> JSONResponse:
        repo = self._repo(request)
        if repo is None:
            return self._missing()
        branch = request.path_params.get("rev", "main")
        return JSONResponse({"id": repo.repo_id, "private": repo.private, "sha": repo.head(branch),
                             "siblings": [{"rfilename": p} for p in sorted(repo.branches.get(branch, {}))]})

    async def create_branch(self, request: Request) -> JSONResponse:
        repo = self._repo(request)
        if repo is None:
            return self._missing()
        branch = request.path_params["branch"]
        if branch in repo.branches:
            return JSONResponse({"error": "Reference already exists"}, status_code=409)
        repo.branches[branch] = dict(repo.branches["main"])
        return JSONResponse({})

    async def tree(self, request: Request) -> JSONResponse:
        repo = self._repo(request)
        if repo is None:
            return self._missing()
        rev, _, prefix = request.path_params["rest"].partition("/")
        files = repo.branches.get(rev)
        if files is None:
            return JSONResponse({"error": "Revision not found"}, status_code=404,
                                headers={"X-Error-Code": "RevisionNotFound"})
        entries = []
        for path in sorted(files):
            if prefix and not path.startswith(prefix.rstrip("/") + "/"):
                continue
            content = files[path]
            entry = {"type": "file", "path": path, "size": len(content), "oid": git_blob_oid(content)}
            if path in repo.lfs_paths:
                entry["lfs"] = {"oid": hashlib.sha256(content).hexdigest(), "size": len(content),
                                "pointerSize": 134}
            entries.append(entry)
        return JSONResponse(entries)

    async def validate_yaml(self, request: Request) -> JSONResponse:
        payload = await request.json()
        content = payload.get("content", "")
        if content.startswith("---\n"):
            try:
                metadata = yaml.safe_load(content.split("\n---\n", 1)[0][4:])
            except yaml.YAMLError as exc:
                return JSONResponse({"errors": [{"message": str(exc)}]}, status_code=400)
            if not isinstance(metadata, dict):
                return JSONResponse({"errors": [{"message": "metadata is not a mapping"}]}, status_code=400)
        return JSONResponse({"errors": [], "warnings": []})

    async def whoami(self, request: Request) -> JSONResponse:
        return JSONResponse({"type": "user", "name": "tester", "auth": {"type": "access_token"}})

    async def preupload(self, request: Request) -> JSONResponse:
        repo = self._repo(request)
        if repo is None:
            return self._missing()
        current = repo.branches.get(request.path_params["rev"], {})
        answers = []
        for item in (await request.json())["files"]:
            path = item["path"]
            lfs = path.endswith(self.lfs_suffixes)
            oid = None
            if path in current:
                content = current[path]
                oid = hashlib.sha256(content).hexdigest() if path in repo.lfs_paths else git_blob_oid(content)
            answers.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                            "oid": oid})
        return JSONResponse({"files": answers, "commitOid": repo.head()})

    async def lfs_batch(self, request: Request) -> JSONResponse:
        if self._repo(request) is None:
            return self._missing()
        payload = await request.json()
        objects = []
        for obj in payload["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.lfs_objects:
                entry["actions"] = {"upload": {"href": f"{self.endpoint}/lfs-upload/{obj['oid']}", "header": {}}}
            objects.append(entry)
        return JSONResponse({"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                            media_type="application/vnd.git-lfs+json")

    async def lfs_upload(self, request: Request) -> Response:
        oid = request.path_params["oid"]
        body = await request.body()
        if hashlib.sha256(body).hexdigest() != oid:
            return JSONResponse({"error": "sha256 mismatch"}, status_code=400)
        self.lfs_objects[oid] = body
        return Response(status_code=200)

    async def commit(self, request: Request) -> JSONResponse:
        repo = self._repo(request)
        if repo is None:
            return self._missing()
        branch = request.path_params["rev"]
        if branch not in repo.branches:
            return JSONResponse({"error": "Revision not found"}, status_code=404,
                                headers={"X-Error-Code": "RevisionNotFound"})
        files = dict(repo.branches[branch])
        lfs_paths = set(repo.lfs_paths)
        header: dict = {}
        for line in (await request.body()).splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
                lfs_paths.discard(value["path"])
            elif key == "lfsFile":
                content = self.lfs_objects.get(value["oid"])
                if content is None:
                    return JSONResponse({"error": f"LFS object {value['oid']} was never uploaded"}, status_code=400)
                files[value["path"]] = content
                lfs_paths.add(value["path"])
            elif key == "deletedFile":
                if value["path"] not in files:
                    return JSONResponse({"error": "A file with this name doesn't exist"}, status_code=404,
                                        headers={"X-Error-Code": "EntryNotFound"})
                del files[value["path"]]
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {p: c for p, c in files.items() if not p.startswith(prefix)}
            else:
                return JSONResponse({"error": f"unknown commit operation {key!r}"}, status_code=400)
        oid = hashlib.sha1(f"{repo.repo_id}:{len(repo.commits)}".encode()).hexdigest()
        repo.branches[branch] = files
        repo.lfs_paths = lfs_paths
        repo.commits.append({"oid": oid, "branch": branch, "summary": header.get("summary"),
                             "paths": sorted(files)})
        return JSONResponse({"commitUrl": f"{self.endpoint}/datasets/{repo.repo_id}/commit/{oid}",
                             "commitOid": oid, "pullRequestUrl": None, "success": True})

    async def not_found(self, request: Request) -> JSONResponse:
        self.unserved.append((request.method, request.url.path))
        return JSONResponse({"error": f"the fake hub does not serve {request.method} {request.url.path}"},
                            status_code=404)


class _Recorder:
    """ASGI middleware: records every request before it is handled."""

    def __init__(self, app, hub: FakeHub):
        self.app = app
        self.hub = hub

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            self.hub.requests.append(RecordedRequest(scope["method"], scope["path"], headers.get("authorization"),
                                                     scope.get("query_string", b"").decode()))
        await self.app(scope, receive, send)
