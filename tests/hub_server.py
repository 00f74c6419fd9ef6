"""A Hugging Face Hub-compatible HTTP server for the tests (stdlib only), driven by the real clients.

It implements what `huggingface_hub` 2.4 and `datasets` 5.2 call to create repos, commit files (regular and
git-LFS), list and read them back (docs/design.md §7):

    GET  /api/whoami-v2
    POST /api/repos/create                          409 carries `url` when the repo exists
    POST /api/repos/delete
    POST /api/validate-yaml                         JSON {errors, warnings}; 400 on errors
    GET  /api/{type}s/{ns}/{name}[/revision/{rev}]  repo info (sha, private, siblings, cardData)
    GET  /api/{type}s/{ns}/{name}/tree/{rev}[/{path}]   ?recursive=&expand=; 404 X-Error-Code: EntryNotFound
    POST /api/{type}s/{ns}/{name}/paths-info/{rev}  form or JSON `paths`
    POST /api/{type}s/{ns}/{name}/preupload/{rev}   files[].uploadMode, shouldIgnore, oid (sha256 / git sha1)
    POST /api/{type}s/{ns}/{name}/commit/{rev}      NDJSON header/file/lfsFile/deletedFile/deletedFolder;
                                                    ?create_pr=1 commits to a new refs/pr/N (pullRequestUrl)
    GET  /api/{type}s/{ns}/{name}/commits/{rev}     newest first
    POST /api/{type}s/{ns}/{name}/branch/{branch}   JSON {startingPoint}; 409 when it exists
    GET  /api/{type}s/{ns}/{name}/refs              branches and pull requests
    POST /{prefix}{ns}/{name}.git/info/lfs/objects/batch   git-LFS batch (basic transfer)
    PUT  /api/{type}s/{ns}/{name}/settings          visibility / private
    PUT  /lfs/objects/{sha256}                      LFS upload target (plain or chunked body)
    POST /lfs/verify/{sha256}                       LFS verify
    GET|HEAD /{prefix}{ns}/{name}/resolve/{rev}/{path}      Range, X-Repo-Commit, ETag, X-Linked-Etag/-Size

`{prefix}` is "" for models, "datasets/" and "spaces/" for the others. Users have bearer tokens; private repos
are invisible (404 RepoNotFound) to anyone but their owner; writes need the owner's token (403 otherwise).

Test helpers: `add_user(name) -> token`, `fail(route, status=500, times=1)` (route names: see `_ROUTES`; status
0 drops the connection with no answer), `stop()` / `start()` (same port, same state), `stop_after(route)` (answer
the next request to `route`, then stop), `requests` (a log of (method, path, status)), `commits(repo_id,
repo_type)`, `files(repo_id, repo_type)`.

Run by hand: `python tests/hub_server.py --port 8999 --user alice[:TOKEN]` prints the users' tokens, then serves
until interrupted; state lives in a temporary folder (or `--root DIR`, which survives restarts).

The pytest fixture `hub_server` (made available to every test by `pytest_plugins = ["hub_server"]` in
conftest.py) starts one per test on 127.0.0.1 and points the clients at it (see `HubServer.configure_clients`).
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

try:  # pyyaml is a core dependency of the project; the server still runs without it
    import yaml
except ImportError:  # pragma: no cover
    yaml = None

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
GITATTRIBUTES = (
    "*.7z filter=lfs diff=lfs merge=lfs -text\n*.arrow filter=lfs diff=lfs merge=lfs -text\n"
    "*.bin filter=lfs diff=lfs merge=lfs -text\n*.gguf filter=lfs diff=lfs merge=lfs -text\n"
    "*.gz filter=lfs diff=lfs merge=lfs -text\n*.parquet filter=lfs diff=lfs merge=lfs -text\n"
    "*.pt filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    "*.zip filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"
)
LFS_SUFFIXES = tuple(line.split()[0][1:] for line in GITATTRIBUTES.splitlines())
LFS_SIZE = 10 * 1024 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra or {}


# ---------------------------------------------------------------------------------------------------------
# State: users, repos (a list of commits, each a full snapshot path -> file entry), blobs on disk


class HubState:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.users: dict[str, dict] = {}
        self.repos: dict[str, dict] = {}
        state = self.root / "state.json"
        if state.exists():
            data = json.loads(state.read_text())
            self.users, self.repos = data["users"], data["repos"]

    def save(self) -> None:
        tmp = self.root / "state.json.tmp"
        tmp.write_text(json.dumps({"users": self.users, "repos": self.repos}))
        os.replace(tmp, self.root / "state.json")

    # users ---------------------------------------------------------------------------------------------
    def add_user(self, name: str, token: str | None = None, orgs: tuple[str, ...] = ()) -> str:
        with self.lock:
            token = token or "hf_" + secrets.token_hex(16)
            self.users[name] = {"token": token, "orgs": list(orgs)}
            self.save()
            return token

    def user_for(self, token: str | None) -> str | None:
        if not token:
            return None
        for name, user in self.users.items():
            if secrets.compare_digest(user["token"], token):
                return name
        raise HttpError(401, "Invalid credentials in Authorization header")

    def can_write_namespace(self, user: str | None, namespace: str) -> bool:
        return user is not None and (user == namespace or namespace in self.users[user]["orgs"])

    # blobs -----------------------------------------------------------------------------------------------
    def put_blob(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self.blobs / sha
        if not path.exists():
            tmp = self.blobs / f".{sha}.{threading.get_ident()}"
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return sha

    def has_blob(self, sha: str, size: int | None = None) -> bool:
        path = self.blobs / sha
        return path.exists() and (size is None or path.stat().st_size == size)

    def blob_path(self, sha: str) -> Path:
        return self.blobs / sha

    # repos -----------------------------------------------------------------------------------------------
    @staticmethod
    def key(repo_type: str, repo_id: str) -> str:
        return f"{repo_type}:{repo_id}"

    def repo(self, repo_type: str, repo_id: str, user: str | None, write: bool = False) -> dict:
        repo = self.repos.get(self.key(repo_type, repo_id))
        if repo is None or (repo["private"] and not self.can_write_namespace(user, repo_id.split("/")[0])):
            raise HttpError(404, "Repository not found", "RepoNotFound")
        if write and not self.can_write_namespace(user, repo_id.split("/")[0]):
            if user is None:
                raise HttpError(401, "You must be authenticated to write to this repository")
            raise HttpError(403, f"You don't have the rights to write to {repo_type} repository {repo_id}")
        return repo

    def create_repo(self, repo_type: str, repo_id: str, private: bool, user: str) -> dict:
        repo = {"type": repo_type, "id": repo_id, "private": private, "created": _now(), "commits": [], "refs": {}}
        self.commit(
            repo, {".gitattributes": self.file_entry(GITATTRIBUTES.encode(), lfs=False)}, "initial commit", "", user
        )
        self.repos[self.key(repo_type, repo_id)] = repo
        self.save()
        return repo

    def file_entry(self, data: bytes, lfs: bool) -> dict:
        sha = self.put_blob(data)
        return (
            self.lfs_entry(sha, len(data))
            if lfs
            else {"sha256": sha, "size": len(data), "oid": git_blob_sha1(data), "lfs": False}
        )

    @staticmethod
    def lfs_entry(sha: str, size: int) -> dict:
        return {"sha256": sha, "size": size, "oid": git_blob_sha1(lfs_pointer(sha, size)), "lfs": True}

    def commit(
        self, repo: dict, files: dict, title: str, message: str, user: str, branch: str = "main", parent=None
    ) -> str:
        parent = parent or repo["refs"].get(branch)
        oid = hashlib.sha1(f"{parent}{title}{time.time_ns()}{secrets.token_hex(4)}".encode()).hexdigest()
        repo["commits"].append(
            {
                "id": oid,
                "parent": parent,
                "title": title,
                "message": message,
                "author": user,
                "date": _now(),
                "files": files,
            }
        )
        repo["refs"][branch] = oid
        return oid

    def snapshot(self, repo: dict, revision: str) -> dict:
        revision = urllib.parse.unquote(revision)
        oid = repo["refs"].get(revision, revision)
        for commit in repo["commits"]:
            if commit["id"] == oid:
                return commit
        raise HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def history(self, repo: dict, revision: str) -> list[dict]:
        head = self.snapshot(repo, revision)
        by_id = {c["id"]: c for c in repo["commits"]}
        out, cur = [], head
        while cur is not None:
            out.append(cur)
            cur = by_id.get(cur["parent"]) if cur["parent"] else None
        return out


# ---------------------------------------------------------------------------------------------------------
# Routes

_REPO = r"(?P<type>models|datasets|spaces)/(?P<id>[^/]+/[^/]+)"
_WEB_REPO = r"(?:(?P<prefix>datasets|spaces)/)?(?P<id>[^/]+/[^/]+?)"
_ROUTES = [
    ("whoami", "GET", r"/api/whoami-v2"),
    ("create", "POST", r"/api/repos/create"),
    ("delete", "POST", r"/api/repos/delete"),
    ("validate-yaml", "POST", r"/api/validate-yaml"),
    ("tree", "GET", rf"/api/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?"),
    ("paths-info", "POST", rf"/api/{_REPO}/paths-info/(?P<rev>[^/]+)"),
    ("preupload", "POST", rf"/api/{_REPO}/preupload/(?P<rev>[^/]+)"),
    ("commit", "POST", rf"/api/{_REPO}/commit/(?P<rev>[^/]+)"),
    ("commits", "GET", rf"/api/{_REPO}/commits/(?P<rev>[^/]+)"),
    ("branch", "POST", rf"/api/{_REPO}/branch/(?P<branch>[^/]+)"),
    ("refs", "GET", rf"/api/{_REPO}/refs"),
    ("settings", "PUT", rf"/api/{_REPO}/settings"),
    ("info", "GET", rf"/api/{_REPO}(?:/revision/(?P<rev>[^/]+))?"),
    ("lfs-batch", "POST", rf"/{_WEB_REPO}\.git/info/lfs/objects/batch"),
    ("lfs-upload", "PUT", r"/lfs/objects/(?P<oid>[0-9a-f]{64})"),
    ("lfs-verify", "POST", r"/lfs/verify/(?P<oid>[0-9a-f]{64})"),
    ("resolve", "GET", rf"/{_WEB_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)"),
    ("resolve", "HEAD", rf"/{_WEB_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)"),
]
_COMPILED = [(name, method, re.compile(pattern + r"$")) for name, method, pattern in _ROUTES]


class Handler(BaseHTTPRequestHandler):
    server_version = "LocalHub/1.0"
    protocol_version = "HTTP/1.0"  # one request per connection: stop() really stops

    # plumbing --------------------------------------------------------------------------------------------
    def log_message(self, format, *args):  # quiet
        if self.server.verbose:
            sys.stderr.write("hub_server: " + format % args + "\n")

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _body(self) -> bytes:
        if getattr(self, "_cached_body", None) is not None:
            return self._cached_body
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(chunks)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._cached_body = body
        return body

    def _json(self):
        try:
            return json.loads(self._body() or b"{}")
        except ValueError:
            raise HttpError(400, "Request body is not valid JSON")

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    def _user(self) -> str | None:
        return self.server.state.user_for(self._token())

    def _send(
        self, status: int, body: bytes = b"", headers: dict | None = None, content_type: str = "application/json"
    ):
        self.server.before_answer(self._route)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status = status

    def _send_json(self, status: int, payload, headers: dict | None = None):
        self._send(status, json.dumps(payload).encode(), headers)

    def _dispatch(self, method: str):
        self._status = 0
        self._cached_body = None
        url = urllib.parse.urlsplit(self.path)
        self._query = urllib.parse.parse_qs(url.query)
        name, match = None, None
        self._route = None
        for route, route_method, pattern in _COMPILED:
            if route_method == method and (match := pattern.match(url.path)):
                name = self._route = route
                break
        try:
            if name is None:
                raise HttpError(404, f"No route for {method} {url.path}")
            if self.server.take_fault(name, self):
                return
            params = {k: urllib.parse.unquote(v) if v is not None else None for k, v in match.groupdict().items()}
            getattr(self, "route_" + name.replace("-", "_"))(**params)
        except HttpError as err:
            headers = {"X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._send_json(err.status, {"error": err.message, **err.extra}, headers)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as err:  # a server bug: answer 500 and say so in the log
            sys.stderr.write(f"hub_server: {method} {self.path} crashed: {err!r}\n")
            import traceback

            traceback.print_exc()
            self._send_json(500, {"error": f"internal error: {err!r}"})
        finally:
            self.server.log_request_done(method, url.path, self._status, name)

    def _repo_args(self, type: str | None = None, prefix: str | None = None):
        return REPO_TYPES[type] if type else {"datasets": "dataset", "spaces": "space", None: "model"}[prefix]

    # api -------------------------------------------------------------------------------------------------
    def route_whoami(self):
        user = self._user()
        if user is None:
            raise HttpError(401, "Invalid credentials in Authorization header")
        orgs = [{"type": "org", "name": org, "roleInOrg": "write"} for org in self.server.state.users[user]["orgs"]]
        self._send_json(
            200,
            {
                "type": "user",
                "id": hashlib.md5(user.encode()).hexdigest()[:24],
                "name": user,
                "fullname": user.capitalize(),
                "email": f"{user}@example.invalid",
                "emailVerified": True,
                "canPay": False,
                "isPro": False,
                "orgs": orgs,
                "auth": {"type": "access_token", "accessToken": {"displayName": "tests", "role": "write"}},
            },
        )

    def route_create(self):
        state = self.server.state
        body = self._json()
        user = self._user()
        if user is None:
            raise HttpError(401, "You must be authenticated to create a repository")
        name = body.get("name") or ""
        namespace = body.get("organization") or user
        repo_type = body.get("type") or "model"
        if repo_type not in URL_PREFIX or not _NAME.match(name) or not _NAME.match(namespace):
            raise HttpError(400, f"Invalid repo name or type: {namespace}/{name} ({repo_type})")
        if not state.can_write_namespace(user, namespace):
            raise HttpError(
                403, f'You don\'t have the rights to create a {repo_type} under the namespace "{namespace}"'
            )
        repo_id = f"{namespace}/{name}"
        url = f"{self.server.url}/{URL_PREFIX[repo_type]}{repo_id}"
        with state.lock:
            if state.key(repo_type, repo_id) in state.repos:
                raise HttpError(409, "You already created this repo", extra={"url": url})
            private = body.get("private")
            if private is None:
                private = body.get("visibility") == "private"
            state.create_repo(repo_type, repo_id, bool(private), user)
        self._send_json(200, {"url": url, "name": repo_id, "id": repo_id})

    def route_delete(self):
        state = self.server.state
        body = self._json()
        user = self._user()
        repo_type = body.get("type") or "model"
        repo_id = f"{body.get('organization') or user}/{body.get('name')}"
        with state.lock:
            state.repo(repo_type, repo_id, user, write=True)
            del state.repos[state.key(repo_type, repo_id)]
            state.save()
        self._send_json(200, {})

    def route_validate_yaml(self):
        body = self._json()
        errors, warnings = validate_readme(body.get("content", ""), body.get("repoType", "model"))
        self._send_json(400 if errors else 200, {"errors": errors, "warnings": warnings})

    def route_info(self, type, id, rev=None):
        state = self.server.state
        repo_type = self._repo_args(type)
        with state.lock:
            repo = state.repo(repo_type, id, self._user())
            snap = state.snapshot(repo, rev or "main")
            files = snap["files"]
            card = {}
            if "README.md" in files:
                card = readme_metadata(state.blob_path(files["README.md"]["sha256"]).read_text("utf-8")) or {}
            self._send_json(
                200,
                {
                    "_id": hashlib.md5(id.encode()).hexdigest()[:24],
                    "id": id,
                    "author": id.split("/")[0],
                    "sha": snap["id"],
                    "createdAt": repo["created"],
                    "lastModified": snap["date"],
                    "private": repo["private"],
                    "gated": False,
                    "disabled": False,
                    "downloads": 0,
                    "likes": 0,
                    "tags": [],
                    "cardData": card,
                    "siblings": [{"rfilename": p} for p in sorted(files)],
                    "usedStorage": sum(f["size"] for f in files.values()),
                },
            )

    @staticmethod
    def _file_json(path: str, entry: dict, commit: dict | None) -> dict:
        out = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": path}
        if entry["lfs"]:
            out["lfs"] = {
                "oid": entry["sha256"],
                "size": entry["size"],
                "pointerSize": len(lfs_pointer(entry["sha256"], entry["size"])),
            }
        if commit is not None:
            out["lastCommit"] = {"id": commit["id"], "title": commit["title"], "date": commit["date"]}
        return out

    @staticmethod
    def _dir_json(path: str, files: dict, commit: dict | None) -> dict:
        inside = sorted((p, f["oid"]) for p, f in files.items() if p.startswith(path + "/"))
        out = {"type": "directory", "oid": hashlib.sha1(repr(inside).encode()).hexdigest(), "size": 0, "path": path}
        if commit is not None:
            out["lastCommit"] = {"id": commit["id"], "title": commit["title"], "date": commit["date"]}
        return out

    def _entries(self, files: dict, base: str, recursive: bool, commit: dict | None) -> list[dict]:
        base = base.strip("/")
        prefix = base + "/" if base else ""
        dirs, out = set(), []
        for path in sorted(files):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :]
            parts = rest.split("/")
            for i in range(1, len(parts) if recursive else min(len(parts), 2)):
                d = prefix + "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    out.append(self._dir_json(d, files, commit))
            if recursive or len(parts) == 1:
                out.append(self._file_json(path, files[path], commit))
        return out

    def route_tree(self, type, id, rev, path=None):
        state = self.server.state
        expand = self._query.get("expand", ["false"])[0].lower() in ("1", "true")
        recursive = self._query.get("recursive", ["false"])[0].lower() in ("1", "true")
        with state.lock:
            repo = state.repo(self._repo_args(type), id, self._user())
            snap = state.snapshot(repo, rev)
            files = snap["files"]
            path = (path or "").strip("/")
            if path and not any(p.startswith(path + "/") for p in files):
                raise HttpError(404, f"Entry not found: {path}", "EntryNotFound")
            self._send_json(200, self._entries(files, path, recursive, snap if expand else None))

    def route_paths_info(self, type, id, rev):
        state = self.server.state
        if "json" in self.headers.get("Content-Type", ""):
            body = self._json()
            paths, expand = body.get("paths", []), bool(body.get("expand"))
        else:
            form = urllib.parse.parse_qs(self._body().decode())
            paths = form.get("paths", []) + form.get("paths[]", [])
            expand = form.get("expand", ["False"])[0].lower() in ("1", "true")
        if isinstance(paths, str):
            paths = [paths]
        with state.lock:
            repo = state.repo(self._repo_args(type), id, self._user())
            snap = state.snapshot(repo, rev)
            files = snap["files"]
            out = []
            for path in paths:
                path = path.strip("/")
                if path in files:
                    out.append(self._file_json(path, files[path], snap if expand else None))
                elif any(p.startswith(path + "/") for p in files) or path == "":
                    out.append(self._dir_json(path, files, snap if expand else None))
            self._send_json(200, out)

    def route_preupload(self, type, id, rev):
        state = self.server.state
        body = self._json()
        with state.lock:
            repo = state.repo(self._repo_args(type), id, self._user(), write=True)
            files = state.snapshot(repo, rev)["files"] if urllib.parse.unquote(rev) in repo["refs"] else {}
            out = []
            for f in body.get("files", []):
                path, size = f["path"], int(f.get("size", 0))
                sample = base64.b64decode(f.get("sample", ""))
                lfs = path.endswith(LFS_SUFFIXES) or size >= LFS_SIZE or b"\0" in sample
                existing = files.get(path)
                oid = None
                if existing is not None:
                    oid = existing["sha256"] if existing["lfs"] else existing["oid"]
                out.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
            self._send_json(200, {"files": out, "commitOid": repo["refs"].get("main")})

    def route_commit(self, type, id, rev):
        state = self.server.state
        repo_type = self._repo_args(type)
        user = self._user()
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        with state.lock:
            repo = state.repo(repo_type, id, user, write=True)
            branch = urllib.parse.unquote(rev)
            if branch not in repo["refs"]:
                raise HttpError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            # create_pr: the commit goes to a new refs/pr/N made from the parent commit (else the branch's head);
            # the branch itself does not move
            create_pr = self._query.get("create_pr", ["0"])[0] in ("1", "true")
            header = next((item.get("value", {}) for item in lines if item.get("key") == "header"), {})
            parent = header.get("parentCommit")
            if parent and not create_pr and parent != repo["refs"][branch]:
                raise HttpError(412, "A commit has happened since. Please refresh and try again.")
            base = state.snapshot(repo, parent) if parent and create_pr else state.snapshot(repo, branch)
            files = dict(base["files"])
            for item in lines:
                key, value = item.get("key"), item.get("value", {})
                if key == "header":
                    continue
                elif key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise HttpError(400, "Only base64 encoding is supported")
                    files[value["path"]] = state.file_entry(base64.b64decode(value["content"]), lfs=False)
                elif key == "lfsFile":
                    oid, size = value["oid"], value.get("size")
                    if not state.has_blob(oid, size):
                        raise HttpError(422, f"LFS object {oid} for {value['path']} was never uploaded")
                    files[value["path"]] = state.lfs_entry(oid, state.blob_path(oid).stat().st_size)
                elif key == "deletedFile":
                    if value["path"] not in files:
                        raise HttpError(404, "A file with this name doesn't exist", "EntryNotFound")
                    del files[value["path"]]
                elif key == "deletedFolder":
                    folder = value["path"].rstrip("/") + "/"
                    gone = [p for p in files if p.startswith(folder)]
                    if not gone:
                        raise HttpError(404, "A folder with this name doesn't exist", "EntryNotFound")
                    for p in gone:
                        del files[p]
                else:
                    raise HttpError(400, f"Unknown commit operation {key!r}")
            if not header.get("summary"):
                raise HttpError(400, "The commit needs a summary")
            if "README.md" in files:
                errors, _ = validate_readme(state.blob_path(files["README.md"]["sha256"]).read_text("utf-8"), repo_type)
                if errors:
                    raise HttpError(400, "Invalid metadata in README.md: " + "; ".join(e["message"] for e in errors))
            pull_request = None
            if create_pr:
                pull_request = 1 + sum(ref.startswith("refs/pr/") for ref in repo["refs"])
                branch = f"refs/pr/{pull_request}"
            oid = state.commit(
                repo, files, header["summary"], header.get("description", ""), user, branch, parent=base["id"]
            )
            state.save()
        web = f"{self.server.url}/{URL_PREFIX[repo_type]}{id}"
        pr_url = f"{web}/discussions/{pull_request}" if pull_request else None
        self._send_json(
            200, {"success": True, "commitOid": oid, "commitUrl": f"{web}/commit/{oid}", "pullRequestUrl": pr_url}
        )

    def route_branch(self, type, id, branch):
        """A new branch at `startingPoint` (a branch or commit; default: main's head); 409 if it exists."""
        state = self.server.state
        body = self._json()
        with state.lock:
            repo = state.repo(self._repo_args(type), id, self._user(), write=True)
            branch = urllib.parse.unquote(branch)
            if branch in repo["refs"]:
                raise HttpError(409, f"Reference already exists: refs/heads/{branch}")
            repo["refs"][branch] = state.snapshot(repo, body.get("startingPoint") or "main")["id"]
            state.save()
        self._send_json(200, {})

    def route_commits(self, type, id, rev):
        state = self.server.state
        with state.lock:
            repo = state.repo(self._repo_args(type), id, self._user())
            out = [
                {
                    "id": c["id"],
                    "title": c["title"],
                    "message": c["message"],
                    "date": c["date"],
                    "authors": [{"user": c["author"]}],
                }
                for c in state.history(repo, rev)
            ]
        self._send_json(200, out)

    def route_refs(self, type, id):
        state = self.server.state
        with state.lock:
            repo = state.repo(self._repo_args(type), id, self._user())
            refs = repo["refs"].items()
            branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": oid} for b, oid in refs if "/" not in b]
            pulls = [{"name": r, "ref": r, "targetCommit": oid} for r, oid in refs if r.startswith("refs/pr/")]
        self._send_json(200, {"branches": branches, "converts": [], "tags": [], "pullRequests": pulls})

    def route_settings(self, type, id):
        state = self.server.state
        body = self._json()
        with state.lock:
            repo = state.repo(self._repo_args(type), id, self._user(), write=True)
            if "visibility" in body:
                repo["private"] = body["visibility"] == "private"
            elif "private" in body:
                repo["private"] = bool(body["private"])
            state.save()
        self._send_json(200, {})

    # git-LFS ---------------------------------------------------------------------------------------------
    def route_lfs_batch(self, id, prefix=None):
        state = self.server.state
        body = self._json()
        with state.lock:
            state.repo(self._repo_args(prefix=prefix), id, self._user(), write=body.get("operation") == "upload")
        objects = []
        for obj in body.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            entry = {"oid": oid, "size": size, "authenticated": True}
            if body.get("operation") == "upload" and not state.has_blob(oid, size):
                entry["actions"] = {
                    "upload": {"href": f"{self.server.url}/lfs/objects/{oid}", "header": {}},
                    "verify": {"href": f"{self.server.url}/lfs/verify/{oid}", "header": {}},
                }
            elif body.get("operation") == "download":
                if not state.has_blob(oid, size):
                    entry["error"] = {"code": 404, "message": "Object does not exist"}
                else:
                    entry["actions"] = {"download": {"href": f"{self.server.url}/lfs/objects/{oid}", "header": {}}}
            objects.append(entry)
        body = json.dumps({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}).encode()
        self._send(200, body, content_type="application/vnd.git-lfs+json")

    def route_lfs_upload(self, oid):
        data = self._body()
        if hashlib.sha256(data).hexdigest() != oid:
            raise HttpError(400, "The uploaded content does not match its sha256")
        self.server.state.put_blob(data)
        self._send(200, b"")

    def route_lfs_verify(self, oid):
        body = self._json()
        if not self.server.state.has_blob(oid, body.get("size")):
            raise HttpError(404, "Object not found or size mismatch")
        self._send_json(200, {"success": True})

    # downloads -------------------------------------------------------------------------------------------
    def route_resolve(self, id, rev, path, prefix=None):
        state = self.server.state
        with state.lock:
            repo = state.repo(self._repo_args(prefix=prefix), id, self._user())
            snap = state.snapshot(repo, rev)
            entry = snap["files"].get(path)
            if entry is None:
                raise HttpError(404, f"Entry not found: {path}", "EntryNotFound")
        data = state.blob_path(entry["sha256"]).read_bytes()
        headers = {"X-Repo-Commit": snap["id"], "ETag": f'"{entry["oid"]}"', "Accept-Ranges": "bytes"}
        if entry["lfs"]:
            headers.update({"X-Linked-Etag": f'"{entry["sha256"]}"', "X-Linked-Size": str(entry["size"])})
        status = 200
        rng = self.headers.get("Range")
        if rng and (m := re.match(r"bytes=(\d*)-(\d*)$", rng.strip())):
            start, end = m.group(1), m.group(2)
            if start == "":
                start, end = max(len(data) - int(end), 0), len(data) - 1
            else:
                start, end = int(start), min(int(end) if end else len(data) - 1, len(data) - 1)
            if start >= len(data) and len(data) > 0:
                raise HttpError(416, "Requested range not satisfiable", extra={})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data = data[start : end + 1]
            status = 206
        self._send(status, data, headers, content_type="application/octet-stream")


# ---------------------------------------------------------------------------------------------------------
# README metadata checks (a subset of what the Hub's validate-yaml enforces)

_FRONT = re.compile(r"\A\s*---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.S)


def readme_metadata(text: str):
    match = _FRONT.match(text)
    if not match or yaml is None:
        return None
    return yaml.safe_load(match.group(1))


def validate_readme(text: str, repo_type: str) -> tuple[list[dict], list[dict]]:
    errors, warnings = [], []
    match = _FRONT.match(text)
    if not match:
        return [], [{"message": "Empty or missing yaml metadata in repo card"}]
    try:
        meta = yaml.safe_load(match.group(1)) if yaml is not None else {}
    except Exception as err:  # yaml.YAMLError
        return [{"message": f"YAML parse error: {err}"}], []
    if meta is None:
        return [], [{"message": "Empty or missing yaml metadata in repo card"}]
    if not isinstance(meta, dict):
        return [{"message": "YAML metadata must be a mapping"}], []

    def strings(value):
        return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))

    for key in ("license", "language", "tags", "task_categories", "size_categories", "pretty_name"):
        if key in meta and not strings(meta[key]):
            errors.append({"message": f'"{key}" must be a string or a list of strings'})
    if repo_type == "dataset" and "configs" in meta:
        configs = meta["configs"]
        if not isinstance(configs, list) or not all(isinstance(c, dict) and "config_name" in c for c in configs):
            errors.append({"message": '"configs" must be a list of objects with a "config_name"'})
        else:
            for config in configs:
                files = config.get("data_files")
                ok = strings(files) or (
                    isinstance(files, list)
                    and all(
                        isinstance(f, dict) and isinstance(f.get("split"), str) and strings(f.get("path"))
                        for f in files
                    )
                )
                if files is not None and not ok:
                    errors.append({"message": f'"configs[{config["config_name"]}].data_files" is malformed'})
    if repo_type == "dataset" and "dataset_info" in meta:
        infos = meta["dataset_info"] if isinstance(meta["dataset_info"], list) else [meta["dataset_info"]]
        for info in infos:
            if not isinstance(info, dict) or not isinstance(info.get("features", []), list):
                errors.append({"message": '"dataset_info.features" must be a list'})
    return errors, warnings


# ---------------------------------------------------------------------------------------------------------
# The server object


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HubServer:
    """A Hub-compatible server on 127.0.0.1 with its state in `root` (a temp dir by default)."""

    def __init__(self, root: str | Path | None = None, port: int = 0, verbose: bool = False):
        self._tmp = None
        if root is None:
            self._tmp = tempfile.mkdtemp(prefix="hub_server_")
            root = self._tmp
        self.state = HubState(Path(root))
        self.port = port
        self.verbose = verbose
        self.requests: list[tuple[str, str, int]] = []
        self._faults: list[dict] = []
        self._stop_after: list[str] = []
        self._lock = threading.Lock()
        self._httpd = None
        self._thread = None

    # lifecycle -------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "HubServer":
        if self._httpd is not None:
            return self
        httpd = _Server(("127.0.0.1", self.port), Handler)
        self.port = httpd.server_address[1]
        httpd.state = self.state
        httpd.url = self.url
        httpd.verbose = self.verbose
        httpd.take_fault = self._take_fault
        httpd.before_answer = self._before_answer
        httpd.log_request_done = self._log
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering: the port refuses connections until `start()` (state is kept)."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
        self._httpd = None

    def close(self) -> None:
        self.stop()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # users, faults, inspection -------------------------------------------------------------------------
    def add_user(self, name: str, token: str | None = None, orgs: tuple[str, ...] = ()) -> str:
        """Create (or replace) a user; returns its token."""
        return self.state.add_user(name, token, orgs)

    def fail(self, route: str, status: int = 500, times: int = 1, after: int = 0) -> None:
        """Make the next `times` requests to `route` (after letting `after` through) fail with `status`;
        status 0 closes the connection without an answer."""
        known = {name for name, _, _ in _ROUTES}
        if route not in known:
            raise ValueError(f"unknown route {route!r}; one of {sorted(known)}")
        with self._lock:
            self._faults.append({"route": route, "status": status, "times": times, "after": after})

    def stop_after(self, route: str) -> None:
        """Answer the next request to `route`, then stop (as `stop()`): the Hub goes away between two calls."""
        if route not in {name for name, _, _ in _ROUTES}:
            raise ValueError(f"unknown route {route!r}")
        with self._lock:
            self._stop_after.append(route)

    def _before_answer(self, route: str | None) -> None:
        with self._lock:
            if route not in self._stop_after:
                return
            self._stop_after.remove(route)
        # Stop listening before the answer goes out, so the client's next connection is surely refused; this
        # handler's own connection stays open and still delivers the answer.
        self.stop()

    def _take_fault(self, route: str, handler: Handler) -> bool:
        with self._lock:
            for fault in self._faults:
                if fault["route"] != route:
                    continue
                if fault["after"] > 0:
                    fault["after"] -= 1
                    return False
                fault["times"] -= 1
                if fault["times"] <= 0:
                    self._faults.remove(fault)
                break
            else:
                return False
        handler._body()  # read the request so the client sees the answer, not a reset
        if fault["status"] == 0:
            handler.close_connection = True
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            handler._status = 0
            return True
        message = f"Injected failure on {route}"
        handler._send_json(fault["status"], {"error": message}, {"X-Error-Message": message})
        return True

    def _log(self, method: str, path: str, status: int, route: str | None) -> None:
        with self._lock:
            self.requests.append((method, path, status))

    def _repo(self, repo_id: str, repo_type: str) -> dict:
        return self.state.repos[self.state.key(repo_type, repo_id)]

    def commits(self, repo_id: str, repo_type: str = "dataset", revision: str = "main") -> list[dict]:
        """The repo's commits on `revision` (a branch, refs/pr/N or a commit), newest first."""
        with self.state.lock:
            repo = self._repo(repo_id, repo_type)
            return self.state.history(repo, revision)

    def files(self, repo_id: str, repo_type: str = "dataset", revision: str = "main") -> dict[str, dict]:
        """path -> {sha256, size, oid, lfs} at the head of `revision`."""
        with self.state.lock:
            return dict(self.state.snapshot(self._repo(repo_id, repo_type), revision)["files"])

    def read(self, repo_id: str, path: str, repo_type: str = "dataset", revision: str = "main") -> bytes:
        return self.state.blob_path(self.files(repo_id, repo_type, revision)[path]["sha256"]).read_bytes()

    def repo_private(self, repo_id: str, repo_type: str = "dataset") -> bool:
        return self._repo(repo_id, repo_type)["private"]

    # clients ---------------------------------------------------------------------------------------------
    def env(self, token: str | None = None, hf_home: str | Path | None = None) -> dict[str, str]:
        """Environment variables pointing `huggingface_hub`/`datasets` (in a new process) at this server."""
        env = {
            "HF_ENDPOINT": self.url,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_OFFLINE": "0",
            "HF_DATASETS_OFFLINE": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_UPDATE_DOWNLOAD_COUNTS": "0",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
            "HF_DATASETS_USE_PARQUET_EXPORT": "0",
        }
        if token is not None:
            env["HF_TOKEN"] = token
        if hf_home is not None:
            env["HF_HOME"] = str(hf_home)
        return env

    def configure_clients(self, monkeypatch, token: str | None = None, hf_home: str | Path | None = None) -> None:
        """Point this process's clients at the server: sets the environment (for subprocesses) and patches the
        import-time copies of it in `huggingface_hub.constants` and `datasets.config` (monkeypatch undoes both)."""
        for key, value in self.env(token, hf_home).items():
            monkeypatch.setenv(key, value)
        if token is None:
            monkeypatch.delenv("HF_TOKEN", raising=False)
        # Import the clients now (under whatever environment they were going to see) and patch their copies, so
        # that the patches, and their undoing at teardown, never depend on who imported them first.
        import huggingface_hub  # noqa: F401

        try:
            import datasets  # noqa: F401
        except ImportError:  # pragma: no cover - datasets is a core dependency
            pass
        if "huggingface_hub" in sys.modules:
            from huggingface_hub import constants

            monkeypatch.setattr(constants, "ENDPOINT", self.url)
            monkeypatch.setattr(
                constants, "HUGGINGFACE_CO_URL_TEMPLATE", self.url + "/{repo_id}/resolve/{revision}/{filename}"
            )
            monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
            monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
            monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
            if hf_home is not None:
                home = Path(hf_home)
                monkeypatch.setattr(constants, "HF_HOME", str(home))
                monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
                monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
                monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
        if "datasets" in sys.modules:
            from datasets import config

            monkeypatch.setattr(config, "HF_ENDPOINT", self.url)
            monkeypatch.setattr(config, "HUB_DATASETS_URL", self.url + "/datasets/{repo_id}/resolve/{revision}/{path}")
            monkeypatch.setattr(config, "HF_HUB_OFFLINE", False)
            monkeypatch.setattr(config, "HF_DATASETS_OFFLINE", False, raising=False)
            monkeypatch.setattr(config, "USE_PARQUET_EXPORT", False)
        try:  # fsspec caches HfFileSystem instances: don't reuse one bound to another server
            from huggingface_hub import HfFileSystem

            HfFileSystem.clear_instance_cache()
        except Exception:
            pass


# ---------------------------------------------------------------------------------------------------------
# pytest fixture (loaded with `pytest_plugins = ["hub_server"]`)

try:
    import pytest
except ImportError:  # pragma: no cover - running by hand without pytest
    pytest = None

if pytest is not None:

    @pytest.fixture
    def hub_server(tmp_path_factory, monkeypatch):
        """A fresh Hub-compatible server on 127.0.0.1 for one test, with the in-process clients pointed at it
        (HF_ENDPOINT, no Xet, online, a private HF_HOME, no token: set one with `add_user` + HF_TOKEN or pass
        `token=`). `hub_server.env(token)` gives the same settings for a subprocess."""
        server = HubServer(root=tmp_path_factory.mktemp("hub_state")).start()
        hf_home = tmp_path_factory.mktemp("hf_home_client")
        server.hf_home = hf_home
        server.configure_clients(monkeypatch, hf_home=hf_home)
        try:
            yield server
        finally:
            server.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="A Hub-compatible server for local tests.")
    parser.add_argument("--port", type=int, default=8999)
    parser.add_argument("--root", help="state folder (kept across restarts); a temp folder by default")
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        help="create this user (repeatable); NAME:TOKEN gives it that token, else a random one",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    server = HubServer(root=args.root, port=args.port, verbose=args.verbose)
    for user in args.user:
        name, _, token = user.partition(":")
        print(f"user {name}: token {server.add_user(name, token or None)}")
    server.start()
    print(f"serving on {server.url}  (HF_ENDPOINT={server.url} HF_HUB_DISABLE_XET=1)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
