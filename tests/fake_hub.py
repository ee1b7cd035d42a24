"""A Hugging Face Hub on loopback: the subset of the HTTP API that ``huggingface_hub`` uses to create a
repo and a branch, validate a card, preupload, upload LFS files (basic transfer) and commit.

State lives in memory: ``repos[repo_id] = {"private": bool, "branches": {name: {path: bytes}},
"commits": [...]}``. Commits are applied all at once, as on the Hub. ``fail`` injects a failure:
``("lfs-upload", n)`` drops the connection on the next n LFS uploads (a network failure mid-upload).
Requests the server does not know are answered 404 and recorded in ``unknown``.

Xet storage is not spoken here: the client must run with ``HF_HUB_DISABLE_XET`` (the LFS path).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

LFS_SUFFIXES = (".safetensors", ".png", ".bin", ".pt")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    def __init__(self, tokens: dict[str, dict]):
        #: token → {"name": user, "orgs": [{"name": org}]}
        self.tokens = tokens
        self.repos: dict[str, dict] = {}
        self.lfs: dict[str, bytes] = {}
        self.unknown: list[str] = []
        self.requests: list[str] = []
        self.fail: tuple[str, int] | None = None
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def files(self, repo_id: str, branch: str = "main") -> dict[str, bytes]:
        return dict(self.repos[repo_id]["branches"][branch])

    # ------------------------------------------------------------------ request handling
    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                """Silence the per-request access log (the tests read ``hub.requests`` instead)."""

            def do_GET(self):
                hub._dispatch(self, "GET")

            def do_POST(self):
                hub._dispatch(self, "POST")

            def do_PUT(self):
                hub._dispatch(self, "PUT")

        return Handler

    def _dispatch(self, request, method: str) -> None:
        url = urlparse(request.path)
        path = unquote(url.path)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        self.requests.append(f"{method} {path}")
        user = self.tokens.get((request.headers.get("Authorization") or "").removeprefix("Bearer "))
        routes = [
            ("GET", r"^/api/whoami-v2$", self._whoami),
            (
                "GET",
                r"^/api/agent-harnesses$",
                lambda user, body: (200, {}),
            ),  # the client's user-agent registry
            ("POST", r"^/api/repos/create$", self._create_repo),
            ("POST", r"^/api/validate-yaml$", self._validate_yaml),
            ("POST", r"^/api/models/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>.+)$", self._preupload),
            ("POST", r"^/api/models/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>.+)$", self._commit),
            ("POST", r"^/api/models/(?P<repo>[^/]+/[^/]+)/branch/(?P<rev>.+)$", self._branch),
            ("GET", r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(/.*)?$", self._tree),
            ("GET", r"^/api/models/(?P<repo>[^/]+/[^/]+)/revision/(?P<rev>.+)$", self._repo_info),
            ("POST", r"^/(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch$", self._lfs_batch),
            ("PUT", r"^/lfs-upload/(?P<oid>[0-9a-f]{64})$", self._lfs_upload),
        ]
        for verb, pattern, handler in routes:
            match = re.match(pattern, path)
            if verb == method and match:
                with self._lock:
                    outcome = handler(user, body, **match.groupdict())
                if outcome is None:  # connection dropped on purpose
                    request.close_connection = True
                    request.connection.close()
                    return
                status, payload = outcome
                self._send(request, status, payload)
                return
        self.unknown.append(f"{method} {request.path}")
        self._send(request, 404, {"error": f"fake hub: no route for {method} {path}"})

    @staticmethod
    def _send(request, status: int, payload) -> None:
        data = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        if status >= 400 and isinstance(payload, dict):
            request.send_header("X-Error-Message", payload.get("error", ""))
        request.end_headers()
        request.wfile.write(data)

    # ------------------------------------------------------------------ helpers
    def _may_write(self, user, repo_id: str) -> bool:
        namespace = repo_id.split("/")[0]
        return user is not None and namespace in [user["name"], *(o["name"] for o in user.get("orgs", []))]

    def _repo(self, user, repo_id: str, write: bool = False):
        """``(repo, None)`` or ``(None, error response)``: unknown (or private to others) → 404, no write
        access when ``write`` → 403."""
        repo = self.repos.get(repo_id)
        if repo is None or (repo["private"] and not self._may_write(user, repo_id)):
            return None, (404, {"error": "Repository not found"})
        if write and not self._may_write(user, repo_id):
            return None, (403, {"error": "You don't have write access to this repo"})
        return repo, None

    # ------------------------------------------------------------------ routes
    def _whoami(self, user, body):
        if user is None:
            return 401, {"error": "Invalid credentials in Authorization header"}
        return 200, {"type": "user", "name": user["name"], "orgs": user.get("orgs", []), "auth": {}}

    def _create_repo(self, user, body):
        payload = json.loads(body)
        repo_id = f"{payload.get('organization') or (user or {}).get('name')}/{payload['name']}"
        if not self._may_write(user, repo_id):
            return 403, {"error": "You don't have the rights to create a model under this namespace"}
        if repo_id in self.repos:
            return 409, {"error": "You already created this model repo", "url": f"{self.endpoint}/{repo_id}"}
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        attributes = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
        self.repos[repo_id] = {
            "private": private,
            "branches": {"main": {".gitattributes": attributes}},
            "commits": [],
        }
        return 200, {"url": f"{self.endpoint}/{repo_id}", "name": repo_id}

    def _validate_yaml(self, user, body):
        import yaml

        content = json.loads(body)["content"]
        if content.startswith("---"):
            try:
                yaml.safe_load(content.split("---")[1])
            except yaml.YAMLError as err:
                return 400, {"error": f"Invalid YAML in README.md: {err}"}
        return 200, {"errors": [], "warnings": []}

    def _preupload(self, user, body, repo, rev):
        found, error = self._repo(user, repo, write=True)
        if error:
            return error
        current = found["branches"].get(rev, {})
        files = []
        for item in json.loads(body)["files"]:
            lfs = item["path"].endswith(LFS_SUFFIXES) or item["size"] > 10_000_000
            existing = current.get(item["path"])
            oid = None
            if existing is not None:
                oid = hashlib.sha256(existing).hexdigest() if lfs else git_blob_sha1(existing)
            files.append(
                {
                    "path": item["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": oid,
                }
            )
        return 200, {"files": files}

    def _lfs_batch(self, user, body, repo):
        if not self._may_write(user, repo):
            return 403, {"message": "write access denied"}
        objects = []
        for item in json.loads(body)["objects"]:
            entry = {"oid": item["oid"], "size": item["size"], "authenticated": True}
            if item["oid"] not in self.lfs:
                entry["actions"] = {"upload": {"href": f"{self.endpoint}/lfs-upload/{item['oid']}"}}
            objects.append(entry)
        return 200, {"transfer": "basic", "objects": objects}

    def _lfs_upload(self, user, body, oid):
        if self.fail and self.fail[0] == "lfs-upload" and self.fail[1] > 0:
            self.fail = ("lfs-upload", self.fail[1] - 1)
            return None
        if hashlib.sha256(body).hexdigest() != oid:
            return 400, {"error": "sha256 mismatch"}
        self.lfs[oid] = body
        return 200, {}

    def _commit(self, user, body, repo, rev):
        found, error = self._repo(user, repo, write=True)
        if error:
            return error
        if rev not in found["branches"]:
            return 404, {"error": f"Invalid rev id: {rev}"}
        files = dict(found["branches"][rev])
        summary = ""
        for line in body.splitlines():
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                summary = value["summary"]
            elif key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                if value["oid"] not in self.lfs:
                    return 422, {"error": f"LFS object {value['oid']} of {value['path']} was never uploaded"}
                files[value["path"]] = self.lfs[value["oid"]]
            elif key == "deletedFile":
                if value["path"] not in files:
                    return 404, {"error": "A file with this name doesn't exist"}
                del files[value["path"]]
            else:
                return 400, {"error": f"fake hub: unsupported commit operation {key}"}
        oid = hashlib.sha1(
            json.dumps(sorted((p, git_blob_sha1(b)) for p, b in files.items())).encode()
        ).hexdigest()
        found["branches"][rev] = files
        found["commits"].append({"branch": rev, "summary": summary, "oid": oid})
        return 200, {"commitUrl": f"{self.endpoint}/{repo}/commit/{oid}", "commitOid": oid, "success": True}

    def _branch(self, user, body, repo, rev):
        found, error = self._repo(user, repo, write=True)
        if error:
            return error
        if rev in found["branches"]:
            return 409, {"error": "Reference already exists"}
        start = (json.loads(body) if body else {}).get("startingPoint") or "main"
        found["branches"][rev] = dict(found["branches"][start])
        return 200, {}

    def _tree(self, user, body, repo, rev):
        found, error = self._repo(user, repo)
        if error:
            return error
        if rev not in found["branches"]:
            return 404, {"error": f"Invalid rev id: {rev}"}
        entries = []
        for path, data in sorted(found["branches"][rev].items()):
            entry = {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha1(data)}
            if path.endswith(LFS_SUFFIXES):
                entry["lfs"] = {
                    "oid": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "pointerSize": 134,
                }
            entries.append(entry)
        return 200, entries

    def _repo_info(self, user, body, repo, rev):
        found, error = self._repo(user, repo)
        if error:
            return error
        head = next((c["oid"] for c in reversed(found["commits"]) if c["branch"] == rev), "0" * 40)
        siblings = [{"rfilename": p} for p in sorted(found["branches"].get(rev, {}))]
        return 200, {"id": repo, "sha": head, "private": found["private"], "siblings": siblings}
