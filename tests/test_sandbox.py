"""grader.sandbox: each test is an attack a submission could try, and it must fail inside the sandbox.

They run under the mechanism the grader would use here (``sandbox.detect("auto")``): bubblewrap where it
is installed; else, as root, util-linux namespaces or a dedicated user with a cgroup where the probe finds
the guarantee. Without any, they are skipped with the reason, and attacks that only bubblewrap's private
file system stops are skipped under the weaker mechanisms. Each starts one small sandboxed Python and takes a second or two; importing torch
takes longer.
"""
import json
import re
import os
import signal
import socket
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from grader import sandbox

pytestmark = pytest.mark.corpus

ROOT = Path(__file__).resolve().parents[1]
SMALL = sandbox.Limits(cpu_seconds=20, memory_bytes=512 << 20, processes=32, file_bytes=8 << 20)


@pytest.fixture(scope="module")
def mech():
    try:
        return sandbox.detect("auto")
    except sandbox.SandboxUnavailable as err:
        pytest.skip(f"no operating-system sandbox on this machine: {err}")


def needs_private_files(mech):
    if not mech.bwrap:
        pytest.skip(f"{mech.name} has no minimal file system view (install bubblewrap)")


@pytest.fixture
def scratch(tmp_path):
    path = tmp_path / "scratch"
    path.mkdir()
    return path


def start(mech, code, scratch, *args, limits=SMALL, readable=(), **streams):
    return sandbox.spawn([sys.executable, "-I", "-c", code, *map(str, args)], scratch=scratch,
                         readable=list(readable), limits=limits, env={}, mechanism=mech, **streams)


def run(mech, code, scratch, *args, limits=SMALL, readable=(), timeout=30):
    """(exit code, stdout, stderr) of a sandboxed ``python -c code args``; the tree is ended afterwards."""
    child = start(mech, code, scratch, *args, limits=limits, readable=readable,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = child.communicate(timeout=timeout)
    finally:
        child.kill_tree()
    assert not child.alive()
    return child.returncode, out.decode(), err.decode()


# What the child reads about itself, without /proc (bubblewrap shows none): its capabilities (capget) and
# no_new_privs (prctl).
SELF = """if True:
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()
    assert libc.capget(header, data) == 0
    effective, permitted = data[0] | data[3] << 32, data[1] | data[4] << 32
    no_new_privs = libc.prctl(39, 0, 0, 0, 0)  # PR_GET_NO_NEW_PRIVS
"""


def test_child_runs_unprivileged_in_scratch(mech, scratch):
    code = SELF + """
    print(os.getuid(), os.geteuid(), effective, permitted, no_new_privs,
          os.getcwd() == os.environ["HOME"] == os.environ["TMPDIR"])
    open("mine.txt", "w").write("ok")
    """
    rc, out, err = run(mech, code, scratch)
    assert rc == 0, err
    uid, euid, cap_eff, cap_prm, nnp, home = out.split()
    if os.geteuid() == 0:
        assert int(uid) != 0 and int(euid) != 0, "the child runs as root"
        assert int(uid) in sandbox.mechanism.SANDBOX_UIDS  # its own uid, not a classmate's
    else:
        assert int(uid) == os.getuid()
    assert (cap_eff, cap_prm, nnp) == ("0", "0", "1"), out
    assert home == "True"
    assert (scratch / "mine.txt").read_text() == "ok"


def test_cannot_create_user_namespaces(mech, scratch):
    """A user namespace would give the child capabilities there, and with them kernel code it cannot reach
    otherwise. Threads and processes still start."""
    code = """if True:
        import ctypes, errno, os, threading
        libc = ctypes.CDLL(None, use_errno=True)
        print("unshare", libc.unshare(0x10000000), errno.errorcode[ctypes.get_errno()])  # CLONE_NEWUSER
        thread = threading.Thread(target=print, args=("thread",))
        thread.start()
        thread.join()
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        print("fork", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    """
    rc, out, err = run(mech, code, scratch)
    assert rc == 0, err
    assert out.split() == ["unshare", "-1", "EPERM", "thread", "fork", "7"], out


def test_sees_no_host_paths_in_proc(mech, scratch):
    """/proc would show the mount table and bubblewrap's command line (every host path it binds): the child
    gets the processor's description alone."""
    needs_private_files(mech)
    code = """if True:
        import os
        print(sorted(os.listdir("/proc")), os.path.exists("/proc/self/mountinfo"), os.path.exists("/proc/1/cmdline"))
        print(open("/proc/cpuinfo").read().count("processor") >= 1)
    """
    rc, out, err = run(mech, code, scratch)
    assert rc == 0, err
    assert out.split("\n")[:2] == ["['cpuinfo'] False False", "True"], out


def test_sees_no_host_paths_anywhere(mech, scratch, tmp_path):
    """Its interpreter, its modules, its folders and its environment all have neutral names: nothing the child
    can read names a folder of the host (this checkout, the environment, the Python installation, the grader's
    temporary folders)."""
    needs_private_files(mech)
    lib = tmp_path / "child"
    (lib / "pkg").mkdir(parents=True)
    (lib / "pkg" / "__init__.py").write_text("")
    code = """if True:
        import json, os, sys
        sys.path.insert(0, sys.argv[1])
        import numpy, pkg, torch
        print(json.dumps([sys.executable, sys.prefix, sys.base_prefix, sys.exec_prefix, sys.path, os.getcwd(),
                          dict(os.environ), sys.argv, pkg.__file__, torch.__file__, numpy.__file__,
                          os.path.realpath(sys.executable), os.listdir("/")]))
    """
    limits = sandbox.Limits(cpu_seconds=120, memory_bytes=4 << 30, processes=256, file_bytes=64 << 20)
    rc, out, err = run(mech, code, scratch, lib, readable=[lib], limits=limits, timeout=120)
    assert rc == 0, err
    seen = json.loads(out)
    assert seen[8] == "/readable/0/pkg/__init__.py" and seen[5] == "/scratch", seen
    host = {str(ROOT), str(tmp_path), os.path.realpath(tmp_path), sys.prefix, sys.base_prefix,
            os.path.realpath(sys.base_prefix), os.path.dirname(os.path.realpath(sys.executable))}
    host -= {"/usr", "/usr/local"}  # a system Python is shown where it is: no machine's own path
    assert not [h for h in host if h in out], (host, seen)


def test_shared_memory_counts_against_the_memory_limit_without_a_cgroup(mech, scratch):
    """RLIMIT_DATA leaves shared mappings out; the address-space limit counts them."""
    import dataclasses

    bare = dataclasses.replace(mech, cgroups=False)
    code = """if True:
        import mmap, sys
        for size in map(int, sys.argv[1:]):
            try:
                block = mmap.mmap(-1, size, flags=mmap.MAP_SHARED)
                block[::4096] = b"x" * len(range(0, size, 4096))
                print("mapped", size >> 20)
                block.close()
            except (OSError, MemoryError) as err:
                print("refused", size >> 20)
    """
    rc, out, err = run(bare, code, scratch, SMALL.memory_bytes // 2, SMALL.address_bytes)
    assert rc == 0, err
    assert out.split("\n")[:2] == [f"mapped {SMALL.memory_bytes >> 21}", f"refused {SMALL.address_bytes >> 20}"], out


def test_a_sandboxs_processes_do_not_count_against_another_without_a_cgroup(mech, tmp_path):
    """RLIMIT_NPROC counts a uid's processes: each sandbox has its own, so one that starts as many threads as
    it may leaves another's allowance whole."""
    import dataclasses

    if not mech.isolated or (os.geteuid() != 0 and not mech.bwrap):
        pytest.skip(f"{mech.name}: no uid or user namespace of its own")
    bare = dataclasses.replace(mech, cgroups=False)
    code = """if True:
        import sys, threading
        done = threading.Event()
        started = 0
        try:
            for _ in range(int(sys.argv[1])):
                threading.Thread(target=done.wait).start()
                started += 1
        except RuntimeError:
            pass
        print("started", started, flush=True)
        sys.stdin.readline()
        done.set()
    """
    folders = [tmp_path / "a", tmp_path / "b"]
    for f in folders:
        f.mkdir()
    children = [start(bare, code, f, SMALL.processes - 8, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE) for f in folders]
    try:
        lines = [c.stdout.readline().decode().split() for c in children]
        for c in children:
            c.stdin.write(b"\n")
            c.stdin.flush()
    finally:
        for c in children:
            c.kill_tree()
    assert lines == [["started", str(SMALL.processes - 8)]] * 2, lines


def test_cannot_read_or_change_the_graders_files(mech, tmp_path, scratch):
    needs_private_files(mech)
    files = {"references": "kit/checks/references/x.pt", "solutions": "kit/helpers/saliency.py",
             "other submission": "submissions/bob/helpers/saliency.py", "grader output": "grades/alice/report.json"}
    for rel in files.values():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("SECRET")
    lib = tmp_path / "lib"
    (lib / "helpers").mkdir(parents=True)
    (lib / "helpers" / "model.py").write_text("MODEL = 1\n")
    code = """if True:
        import json, os, sys
        seen = {}
        for path in sys.argv[1:]:
            try:
                seen[path] = "READ:" + (open(path).read()[:10] if os.path.isfile(path) else str(os.listdir(path)))
            except FileNotFoundError:
                seen[path] = "absent"
            except PermissionError:
                seen[path] = "denied"
        print(json.dumps(seen))
    """
    real_checkout = [ROOT / "checks" / "references", ROOT / "grader" / "grade.py", ROOT / "README.md"]
    targets = [tmp_path / rel for rel in files.values()] + real_checkout
    rc, out, err = run(mech, code, scratch, lib / "helpers" / "model.py", *targets, readable=[lib])
    assert rc == 0, err
    seen = json.loads(out)
    # what it may read, it can, under the name it is given (bubblewrap's Layout)
    assert seen.pop("/readable/0/helpers/model.py") == "READ:MODEL = 1\n", out
    assert all(v in ("absent", "denied") for v in seen.values()), out
    listing = run(mech, "import os, sys; print(sorted(os.listdir(sys.argv[1])))", scratch, tmp_path, readable=[lib])
    assert listing[0] != 0 and "FileNotFoundError" in listing[2], listing  # the folder holding both: not there
    write = run(mech, "open(__import__('sys').argv[1], 'w').write('x')", scratch, lib / "helpers" / "model.py",
                readable=[lib])
    assert write[0] != 0 and "Read-only file system" in write[2]
    assert (lib / "helpers" / "model.py").read_text() == "MODEL = 1\n"


def test_cannot_see_the_graders_processes(mech, scratch):
    if not mech.pid_namespace:
        pytest.skip(f"{mech.name} has no pid namespace")
    marker = f"other-student-{uuid.uuid4().hex}"  # never given to the child: it must not find it
    decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    try:
        deadline = time.monotonic() + 10
        while marker.encode() not in Path(f"/proc/{decoy.pid}/cmdline").read_bytes():  # visible outside
            assert time.monotonic() < deadline
            time.sleep(0.01)
        code = """if True:
            import json, os
            seen = {}
            for p in os.listdir("/proc"):
                if p.isdigit():
                    try:
                        seen[p] = open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace")
                    except OSError as err:
                        seen[p] = type(err).__name__
            print(json.dumps(seen))
        """
        rc, out, err = run(mech, code, scratch)
    finally:
        decoy.kill()
        decoy.wait()
    assert rc == 0, err
    seen = json.loads(out)
    assert len(seen) <= 2, seen  # bubblewrap's init and the child itself
    grader = Path(f"/proc/{os.getpid()}/cmdline").read_bytes().decode(errors="replace")
    assert not any(marker in c or grader in c for c in seen.values()), seen


def test_cannot_reach_the_network(mech, scratch):
    if not mech.pid_namespace:
        pytest.skip(f"{mech.name} has no network namespace")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    port = server.getsockname()[1]
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # reachable from outside
        code = """if True:
            import socket, sys
            print([name for _, name in socket.if_nameindex()])
            try:
                socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
                print("CONNECTED")
            except OSError as err:
                print("blocked", type(err).__name__)
        """
        rc, out, err = run(mech, code, scratch, port)
    finally:
        server.close()
    assert rc == 0, err
    assert "blocked" in out and "CONNECTED" not in out, out
    assert out.splitlines()[0] == "['lo']", out  # a network namespace of its own: nothing but loopback


def test_fork_bomb_is_bounded_and_ended(mech, scratch):
    code = """if True:
        import os, time
        made = 0
        while made < 10000:
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(60)
                os._exit(0)
            made += 1
        print(made, flush=True)
        time.sleep(60)
    """
    child = start(mech, code, scratch, stdout=subprocess.PIPE)
    try:
        made = int(child.stdout.readline() or -1)
        assert 0 < made < SMALL.processes, made
        assert len(child.alive()) > made  # they are all there ...
    finally:
        child.kill_tree()
    assert not child.alive()  # ... and all gone
    assert subprocess.run(["true"]).returncode == 0  # the grader can still start processes


def test_memory_hog_is_stopped(mech, scratch):
    code = """if True:
        chunks = []
        try:
            while len(chunks) < 64:
                chunks.append(b"x" * (64 << 20))  # touched, not just reserved
            print("ALLOCATED", len(chunks))
        except MemoryError:
            print("MemoryError after", len(chunks) * 64, "MB")
    """
    rc, out, err = run(mech, code, scratch)
    assert "ALLOCATED" not in out
    assert rc == -signal.SIGKILL or (rc == 0 and "MemoryError" in out), (rc, out, err)
    if "MemoryError" in out:
        assert int(out.split()[2]) <= SMALL.memory_bytes >> 20
    big = bytearray(1 << 30)  # the grader is unharmed
    assert len(big) == 1 << 30


def test_memory_of_the_whole_tree_is_bounded(mech, scratch):
    if not mech.cgroups:
        pytest.skip(f"{mech.name} has no memory cgroup here: memory is limited per process only")
    code = """if True:
        import os, time
        pids = []
        for _ in range(3):  # each stays under the per-process limit; together they do not
            pid = os.fork()
            if pid == 0:
                block = b"x" * (300 << 20)
                time.sleep(2)
                os._exit(0)
            pids.append(pid)
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            print("KILLED" if os.WIFSIGNALED(status) else "ok")
    """
    rc, out, err = run(mech, code, scratch)
    assert rc == -signal.SIGKILL or "KILLED" in out, (rc, out, err)


def test_huge_file_is_stopped(mech, scratch):
    code = """if True:
        import errno, os
        written = 0
        try:
            with open("big.bin", "wb") as f:
                while written < 1 << 30:
                    f.write(b"\\0" * (1 << 20))
                    written += 1 << 20
            print("WROTE 1 GB")
        except OSError as err:
            print(errno.errorcode[err.errno], written >> 20)
        tmp = 0
        try:
            for i in range(4):  # /tmp is a small private tmpfs
                with open(f"/tmp/{i}.bin", "wb") as f:
                    f.write(b"\\0" * (6 << 20))
                tmp += 1
        except OSError as err:
            print("tmp", errno.errorcode[err.errno], tmp)
    """
    rc, out, err = run(mech, code, scratch)
    assert rc == 0 or rc == -signal.SIGXFSZ, (rc, err)
    assert "WROTE 1 GB" not in out
    assert (scratch / "big.bin").stat().st_size <= SMALL.file_bytes
    if rc == 0:
        assert out.startswith("EFBIG"), out
    if mech.bwrap and sandbox.bubblewrap.bwrap_has(mech.bwrap, "--size"):
        assert "tmp ENOSPC" in out, out


def test_cpu_spin_is_killed(mech, scratch):
    start_time = time.monotonic()
    rc, out, err = run(mech, "while True: pass", scratch,
                       limits=sandbox.Limits(cpu_seconds=1, memory_bytes=512 << 20, processes=32, file_bytes=1 << 20))
    assert rc in (-signal.SIGXCPU, -signal.SIGKILL), (rc, err)
    assert time.monotonic() - start_time < 15


DESCENDANT = """if True:
    import os, sys, time
    if os.fork() == 0:
        os.setsid()  # leave the session and the process group ...
        if os.fork() == 0:  # ... and the parent: a daemon
            open("started", "w").close()
            time.sleep(1.5)
            open("late.txt", "w").write("rewritten results")
            os._exit(0)
        os._exit(0)
    while not os.path.exists("started"):
        time.sleep(0.01)
    if sys.argv[1] == "stay":
        time.sleep(60)
"""


def _await(path: Path, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.01)


def test_daemonized_descendant_dies_with_kill_tree(mech, scratch):
    child = start(mech, DESCENDANT, scratch, "stay")
    try:
        _await(scratch / "started")
        assert len(child.alive()) >= 2
    finally:
        child.kill_tree()
    assert not child.alive()
    time.sleep(2.5)  # longer than the descendant's sleep
    assert not (scratch / "late.txt").exists()


def test_daemonized_descendant_dies_when_the_child_exits(mech, scratch):
    if not mech.pid_namespace:
        pytest.skip(f"{mech.name} has no pid namespace: only kill_tree ends a daemonized descendant")
    child = start(mech, DESCENDANT, scratch, "exit")
    try:
        _await(scratch / "started")
        assert child.wait(20) == 0
        time.sleep(2.5)  # no kill_tree yet: the pid namespace ended with its first process
        assert not (scratch / "late.txt").exists()
        assert not child.alive()
    finally:
        child.kill_tree()


def test_torch_imports_inside(mech, scratch):
    code = """if True:
        import numpy, torch
        print(torch.__version__, float(torch.ones(3) @ torch.ones(3)), numpy.__version__)
    """
    limits = sandbox.Limits(cpu_seconds=120, memory_bytes=4 << 30, processes=256, file_bytes=64 << 20)
    rc, out, err = run(mech, code, scratch, limits=limits, timeout=120)
    assert rc == 0, err
    import torch

    assert out.split()[:2] == [torch.__version__, "3.0"]


def test_libraries_a_submission_may_not_use_do_not_exist_inside(mech, scratch):
    """Hide, don't detect: Captum (and torchvision, Jupyter) cannot be imported by any route, not even by
    putting the environment's own site-packages folder on the path again."""
    needs_private_files(mech)
    import site as site_module

    folders = site_module.getsitepackages()
    code = """if True:
        import importlib, sys
        sys.path += sys.argv[1:]
        for name in ("captum", "captum.attr", "torchvision", "jupyter_client"):
            try:
                importlib.import_module(name)
            except ImportError:
                print("hidden", name)
            else:
                print("FOUND", name)
    """
    rc, out, err = run(mech, code, scratch, *folders, limits=SMALL, timeout=60)
    assert rc == 0, err
    assert out.split() == ["hidden", "captum", "hidden", "captum.attr", "hidden", "torchvision", "hidden",
                           "jupyter_client"], out



def test_detect_without_any_mechanism_refuses_and_none_only_by_name(monkeypatch):
    monkeypatch.setattr(sandbox.detection, "_candidates", lambda user: [])
    with pytest.raises(sandbox.SandboxUnavailable, match="install bubblewrap"):
        sandbox.detect("auto")
    assert sandbox.detect("none") is sandbox.NONE
    for mode in ("sometimes", "required"):
        with pytest.raises(ValueError):
            sandbox.detect(mode)


def test_detect_skips_a_mechanism_that_fails(monkeypatch, mech):
    broken = sandbox.Mechanism("bubblewrap", "broken", bwrap="/nonexistent/bwrap")
    monkeypatch.setattr(sandbox.detection, "_candidates", lambda user: [broken, mech])
    assert sandbox.detect("auto") == mech


def _root_mechanisms_without_bubblewrap() -> list:
    if os.geteuid() != 0:
        return []
    return [m for m in sandbox.detection._candidates(sandbox.SANDBOX_USER) if not m.bwrap]


@pytest.mark.parametrize("weak", _root_mechanisms_without_bubblewrap(), ids=lambda m: m.name)
def test_a_mechanism_without_the_guarantee_is_not_offered(monkeypatch, weak, tmp_path):
    """Without bubblewrap the dedicated user sees the machine's files. Here it cannot even run this
    environment (in root's home) or it could import Captum: refused, saying why, never a silent fallback.
    Run with the system's Python (no Captum), a readable secret and a writable kit folder are refused too."""
    monkeypatch.setattr(sandbox.detection, "_candidates", lambda user: [weak])
    with pytest.raises(sandbox.SandboxUnavailable, match=re.escape(weak.name)):
        sandbox.detect("auto")
    system = "/usr/bin/python3"
    if not os.access(system, os.X_OK) or subprocess.run([system, "-I", "-c", "import captum"],
                                                       capture_output=True).returncode == 0:
        pytest.skip("no system Python without Captum to run the probe with")
    prefixes = subprocess.run([system, "-I", "-c", "import sys; print(sys.prefix); print(sys.base_prefix)"],
                              capture_output=True, text=True).stdout.split()
    monkeypatch.setattr(sys, "executable", system)
    monkeypatch.setattr(sys, "prefix", prefixes[0])
    monkeypatch.setattr(sys, "base_prefix", prefixes[1])
    place = Path(tempfile.mkdtemp(prefix="convlens-guard-"))
    try:
        place.chmod(0o755)
        secret, open_folder = place / "hidden.pt", place / "kit"
        secret.write_bytes(b"answers")
        secret.chmod(0o644)
        open_folder.mkdir()
        open_folder.chmod(0o777)
        problem = sandbox.detection._probe(weak, sandbox.Guard(secret=(secret,), protected=(open_folder,)))
        assert problem and f"{secret} can be read" in problem and f"{open_folder} can be written" in problem
        secret.chmod(0o600)
        open_folder.chmod(0o755)
        assert sandbox.detection._probe(weak, sandbox.Guard(secret=(secret,), protected=(open_folder,))) is None
    finally:
        shutil.rmtree(place)


def test_the_mechanism_offered_here_gives_the_guarantee(mech, tmp_path):
    """The kit's own secrets under the mechanism offered here: unreadable, unwritable, no Captum."""
    from grader.grade import guard_of

    guard = guard_of(ROOT, protected=[tmp_path])
    assert sandbox.detection._probe(mech, guard) is None


def test_readable_folder_inside_scratch_stays_read_only(mech, scratch):
    needs_private_files(mech)
    lib = scratch / "kit"
    lib.mkdir()
    (lib / "core.py").write_text("TRUSTED = True\n")
    code = """if True:
        import os
        open("own.txt", "w").write("mine")
        try:
            open("kit/core.py", "w").write("TRUSTED = False")
        except OSError as err:
            print(type(err).__name__, err.strerror)
    """
    rc, out, err = run(mech, code, scratch, readable=[lib])
    assert rc == 0, err
    assert "Read-only file system" in out
    assert (lib / "core.py").read_text() == "TRUSTED = True\n" and (scratch / "own.txt").exists()


def test_without_a_sandbox_the_limits_still_hold(scratch):
    limits = sandbox.Limits(cpu_seconds=1, memory_bytes=512 << 20, processes=64, file_bytes=1 << 20)
    rc, out, err = run(sandbox.NONE, "while True: pass", scratch, limits=limits)
    assert rc in (-signal.SIGXCPU, -signal.SIGKILL), (rc, err)
    rc, out, err = run(sandbox.NONE, "b = bytearray(1 << 30)", scratch, limits=limits)
    assert rc != 0 and "MemoryError" in err


def test_every_mechanism_offered_here_ends_its_tree(mech):
    """The weaker mechanisms that work on this machine too (the grader only uses the strongest)."""
    working = [m for m in sandbox.detection._candidates(sandbox.SANDBOX_USER) if sandbox.detection._probe(m) is None]
    assert mech in working
    # Without bubblewrap the sandbox user reaches scratch through the real folders: no 0700 on the way.
    tmp_path = Path(tempfile.mkdtemp(prefix="convlens-test-"))
    tmp_path.chmod(0o711)
    for m in working:
        scratch = tmp_path / m.name
        scratch.mkdir()
        child = start(m, DESCENDANT, scratch, "stay")
        try:
            _await(scratch / "started")
            assert len(child.alive()) >= 2, m.name
        finally:
            child.kill_tree()
        assert not child.alive(), m.name
    time.sleep(2)
    try:
        assert not any((tmp_path / m.name / "late.txt").exists() for m in working)
    finally:
        shutil.rmtree(tmp_path)


def test_no_file_it_can_read_names_a_host_folder(mech, scratch, tmp_path):
    """Every file the child can open, read whole (the installation, its bytecode and binaries, the environment,
    the readable and scratch folders, /etc, /tmp): none holds the name of a host folder."""
    needs_private_files(mech)
    lib = tmp_path / "child"
    lib.mkdir()
    (lib / "m.py").write_text("x = 1\n")
    host = {str(ROOT), str(tmp_path), sys.prefix, os.path.realpath(sys.base_prefix)} - {"/usr", "/usr/local"}
    code = """if True:
        import json, os, sys
        needles = [h.encode() for h in json.loads(sys.argv[1])]
        read, named = 0, []
        for top in os.listdir("/"):
            for folder, dirs, files in os.walk("/" + top):
                if folder in ("/proc", "/sys", "/dev", "/usr", "/lib", "/lib64", "/bin", "/sbin"):
                    dirs[:] = []  # the system's own folders and the kernel's: the same on every machine
                    continue
                for name in files:
                    try:
                        with open(os.path.join(folder, name), "rb") as f:
                            data = f.read()
                    except OSError:
                        continue
                    read += 1
                    named += [os.path.join(folder, name) for n in needles if n in data]
        print(json.dumps([read, named[:20], len(named)]))
    """
    limits = sandbox.Limits(cpu_seconds=300, memory_bytes=4 << 30, processes=64, file_bytes=64 << 20)
    rc, out, err = run(mech, code, scratch, json.dumps(sorted(host)), readable=[lib], limits=limits, timeout=300)
    assert rc == 0, err
    read, named, count = json.loads(out)
    assert read > 10000 and not count, (read, count, named)


def test_c_strings_are_rewritten_only_where_a_whole_string_names_the_folder():
    from grader.sandbox.rewritten import rewrite_c_strings

    data = b"\0/home/me/py/lib\0/home/me/py\0x/home/me/py/lib\0/home/me/python\0"
    out = rewrite_c_strings(data, "/home/me/py", "/python")
    assert len(out) == len(data)
    assert out.split(b"\0") == [b"", b"/python/lib", b"", b"", b"", b"", b"/python", b"", b"", b"", b"",
                                b"x/home/me/py/lib", b"/home/me/python", b""]


def test_bytecode_names_the_shown_folder_in_every_code_object():
    import marshal
    from grader.sandbox.rewritten import rewrite_code

    source = "def f():\n    def g():\n        return '/host/env/lib/x'\n    return g\nclass C:\n    pass\n"
    code = rewrite_code(compile(source, "/host/env/lib/m.py", "exec"), [("/host/env", "/venv")])
    code = marshal.loads(marshal.dumps(code))
    names, strings, todo = set(), set(), [code]
    while todo:
        c = todo.pop()
        names.add(c.co_filename)
        todo += [k for k in c.co_consts if hasattr(k, "co_filename")]
        strings |= {k for k in c.co_consts if isinstance(k, str)}
    assert names == {"/venv/lib/m.py"} and "/venv/lib/x" in strings and not any("/host" in s for s in strings)
