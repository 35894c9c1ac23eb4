"""A local stand-in for the Hugging Face Hub's HTTP API, enough for ``huggingface_hub.HfApi``
to create a dataset repo, commit to it (regular uploads: every file inline, base64) and tag
it, and for readers to resolve revisions and download files (with Range). A real threaded
HTTP server on 127.0.0.1, repos kept in memory as commits of whole trees.

    with HubServer() as hub:
        api = HfApi(endpoint=hub.url, token="hf_test")
        ...
        hub.tree("me/data", "main")      # {path: bytes} at a revision
        hub.commits                       # every commit: repo, parent, operations

Endpoints: POST /api/repos/create, POST /api/validate-yaml, POST /api/datasets/R/preupload/REV,
POST /api/datasets/R/commit/REV (ndjson: header, file, deletedFile, deletedFolder; a
``parentCommit`` that is not the branch head is refused with 412, as the Hub does), POST
/api/datasets/R/tag/REV, GET /api/datasets/R/revision/REV, GET /datasets/R/resolve/REV/PATH.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote, urlsplit

from tests.httpserver import QuietServer


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    trees: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit -> tree
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, rev: str) -> str | None:
        if rev in self.branches:
            return self.branches[rev]
        if rev in self.tags:
            return self.tags[rev]
        return rev if rev in self.trees else None


class HubServer:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.commits: list[dict] = []
        self.requests: list[tuple[str, str]] = []
        self.fail_commits: list[int] = []  # HTTP statuses the next commits get instead
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes | dict, headers: dict | None = None):
                data = json.dumps(body).encode() if isinstance(body, dict) else body
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if isinstance(body, dict):
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self):
                self._route()

            def do_HEAD(self):
                self._route()

            def do_POST(self):
                self._route()

            def _route(self):
                path = urlsplit(self.path).path
                hub.requests.append((self.command, unquote(path)))
                parts = [unquote(p) for p in path.strip("/").split("/")]
                with hub.lock:
                    try:
                        status, body, headers = hub.handle(self.command, parts, self)
                    except KeyError as e:
                        status, body, headers = 404, {"error": f"not found: {e}"}, {}
                self._send(status, body, headers)

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # ------------------------------------------------------------------ the API

    def handle(self, method: str, parts: list[str], req) -> tuple[int, bytes | dict, dict]:
        if parts[:3] == ["api", "repos", "create"]:
            spec = json.loads(req._body())
            repo_id = (
                f"{spec['organization']}/{spec['name']}"
                if spec.get("organization")
                else spec["name"]
            )
            if repo_id not in self.repos:
                repo = self.repos[repo_id] = Repo()
                first = self._new_commit(
                    repo_id, None, {".gitattributes": b"*.parquet filter=lfs\n"}, []
                )
                repo.branches["main"] = first
            return 200, {"url": f"{self.url}/datasets/{repo_id}", "name": repo_id}, {}
        if parts[:2] == ["api", "validate-yaml"]:
            req._body()
            return 200, {"errors": [], "warnings": []}, {}
        if parts[:2] == ["api", "datasets"] and len(parts) >= 6:
            repo_id, verb, rev = f"{parts[2]}/{parts[3]}", parts[4], "/".join(parts[5:])
            repo = self.repos[repo_id]
            if verb == "revision" and method == "GET":
                sha = repo.resolve(rev)
                if sha is None:
                    return 404, {"error": f"revision {rev} not found"}, {}
                siblings = [{"rfilename": p} for p in sorted(repo.trees[sha])]
                return 200, {"id": repo_id, "sha": sha, "siblings": siblings}, {}
            if verb == "preupload":
                tree = repo.trees[repo.resolve(rev)]
                files = json.loads(req._body())["files"]
                return 200, {"files": [
                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                     "oid": git_blob_sha1(tree[f["path"]]) if f["path"] in tree else None}
                    for f in files
                ]}, {}  # fmt: skip
            if verb == "commit":
                return self._commit(repo_id, repo, rev, req._body())
            if verb == "tag":
                spec = json.loads(req._body())
                if spec["tag"] in repo.tags:
                    return 409, {"error": "tag exists"}, {}
                repo.tags[spec["tag"]] = repo.resolve(rev)
                return 200, {}, {}
        if parts[0] == "datasets" and len(parts) >= 6 and parts[3] == "resolve":
            repo = self.repos[f"{parts[1]}/{parts[2]}"]
            sha = repo.resolve(parts[4])
            data = repo.trees[sha]["/".join(parts[5:])] if sha else None
            if data is None:
                raise KeyError("/".join(parts[5:]))
            headers = {
                "X-Repo-Commit": sha,
                "ETag": f'"{git_blob_sha1(data)}"',
                "Accept-Ranges": "bytes",
            }
            rng = req.headers.get("Range")
            if rng and rng.startswith("bytes="):
                lo, _, hi = rng.removeprefix("bytes=").partition("-")
                start, end = int(lo), min(int(hi) if hi else len(data) - 1, len(data) - 1)
                if start >= len(data):
                    return 416, b"", {"Content-Range": f"bytes */{len(data)}"}
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                return 206, data[start : end + 1], headers
            return 200, data, headers
        return 404, {"error": "no such endpoint"}, {}

    def _commit(self, repo_id: str, repo: Repo, rev: str, body: bytes):
        items = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = items[0]["value"]
        head = repo.branches[rev]
        if self.fail_commits:
            return self.fail_commits.pop(0), {"error": "A commit has happened since."}, {}
        if header.get("parentCommit") and header["parentCommit"] != head:
            return 412, {"error": "A commit has happened since. Please refresh and try again."}, {}
        tree = dict(repo.trees[head])
        ops = []
        for item in items[1:]:
            v = item["value"]
            if item["key"] == "file":
                tree[v["path"]] = base64.b64decode(v["content"])
                ops.append(("add", v["path"]))
            elif item["key"] == "deletedFile":
                tree.pop(v["path"])
                ops.append(("delete", v["path"]))
            elif item["key"] == "deletedFolder":
                prefix = v["path"].rstrip("/") + "/"
                for p in [p for p in tree if p.startswith(prefix)]:
                    tree.pop(p)
                ops.append(("delete", prefix))
            else:
                return 400, {"error": f"unsupported {item['key']}"}, {}
        sha = self._new_commit(repo_id, head, tree, ops, header.get("summary", ""))
        repo.branches[rev] = sha
        return 200, {"commitUrl": f"{self.url}/datasets/{repo_id}/commit/{sha}", "commitOid": sha,
                     "pullRequestUrl": None}, {}  # fmt: skip

    def _new_commit(self, repo_id, parent, tree, ops, message: str = "initial commit") -> str:
        h = hashlib.sha1(f"{parent}\n{message}\n".encode())
        for p in sorted(tree):
            h.update(f"{p}\0{git_blob_sha1(tree[p])}\n".encode())
        sha = h.hexdigest()
        self.repos[repo_id].trees[sha] = tree
        self.commits.append(
            {"repo": repo_id, "sha": sha, "parent": parent, "message": message, "ops": ops}
        )
        return sha

    # ------------------------------------------------------------------ for assertions

    def tree(self, repo_id: str, rev: str = "main") -> dict[str, bytes]:
        repo = self.repos[repo_id]
        return repo.trees[repo.resolve(rev)]

    def start(self) -> HubServer:
        self.thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
