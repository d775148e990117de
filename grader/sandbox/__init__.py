"""An operating-system sandbox for running a submission's code: the parent judges, an unprivileged child
computes.

    mech = sandbox.detect("auto")          # once; print mech.description
    child = sandbox.spawn([sys.executable, "-I", "child_folder/checks/child/worker.py", ...], scratch=scratch,
                          readable=[child_folder], limits=sandbox.Limits(), env=env, mechanism=mech,
                          pass_fds=(request_r, reply_w))
    try:
        ...talk to it over the pipes...; child.wait(timeout)
    finally:
        child.kill_tree()                  # no process of the child is left, whatever it started

What the child gets under bubblewrap: ``scratch`` (read-write; its working directory, HOME and TMPDIR),
the ``readable`` paths (read-only), the system's /usr and shared libraries, and the calling interpreter's
installation with only the distributions the child may use, all under neutral names (``/scratch``,
``/readable/<i>``, ``/python``, ``/venv``: bubblewrap.Layout; ``spawn`` renames ``argv`` and ``env`` to
match; files whose contents name a host folder are shown rewritten: grader.sandbox.rewritten); of /proc only the processor's
description (a whole /proc, even a fresh one, shows the host's mount table and paths), a minimal /dev, a
small private /tmp, no network, no new user namespaces (a seccomp filter), and the resource limits in
:class:`Limits`, which hold without a cgroup. Nothing else of the machine's file system exists for it: not the kit checkout, reference
answers, other submissions or the grader's output folder. Guards written in Python inside the child would
count for nothing (the student's code runs in the same interpreter), so every barrier here is the
kernel's. The mechanisms, strongest first (:func:`detect` takes the first that works):

* ``bubblewrap+user`` (the grader runs as root): bubblewrap builds new mount, pid, network, IPC and UTS
  namespaces; inside them a small trampoline sets the rlimits and drops to a uid of its own
  (``SANDBOX_UIDS``: one per sandbox, so RLIMIT_NPROC counts that sandbox alone) in the group of a dedicated
  system user (``convlens-grader``, created if missing), with no capabilities and no_new_privs. The uid must
  be a real one, not a user namespace: bubblewrap run by root maps a namespace's uid to root outside, whose
  files the child could then own and for which the kernel never enforces RLIMIT_NPROC.
* ``bubblewrap`` (an ordinary user): the same view through an unprivileged user namespace; the child keeps
  the caller's uid, has no capabilities, and may not create further user namespaces.
* ``namespaces+user`` (root, no bubblewrap): util-linux ``unshare`` gives new pid, network and IPC
  namespaces, but the file system is the machine's: the dedicated user reads what others may read.
* ``setuid-user`` (root without usable namespaces): only the dedicated user, the rlimits and a cgroup; it
  also shares the network and sees every process. Offered only when a cgroup can be made, because that is
  how its whole process tree is found and ended.
* ``none``: a plain child process with the rlimits, only when asked for by name (trusted code).

Every mechanism but ``none`` is offered only after :func:`detect` has run a probe under it and found the
guarantee (:class:`Guard`): the child cannot import Captum, read the hidden cases or the solutions, or write
into the kit, the grades or the grader's home. bubblewrap gives it by construction; the two mechanisms
without it give it only where the files' permissions and the environment do (the Gradescope bundle makes
the kit readable by root alone and leaves Captum out). An ordinary user without bubblewrap has no mechanism:
a child with the caller's uid could read and write all of the caller's files.

Which platform needs which mechanism: ``bubblewrap+user`` is what CI and the Gradescope bundle use (root in
a Debian or Ubuntu container with the bubblewrap package); ``bubblewrap`` an instructor's own Linux machine
as an ordinary user; ``namespaces+user`` a root container without bubblewrap; ``setuid-user`` a root
container whose kernel refuses new namespaces (a hosted autograder may be one); macOS and Windows have
none of these, and the grader refuses there.

Ending the tree: a pid namespace dies with its first process (the kernel kills everything else in it), so
:meth:`Child.kill_tree` kills that process; a ``setsid``/double-forked descendant is still inside the
namespace, and it also dies when the child's main process exits. Where the cgroup hierarchy is writable
(root), each sandbox also gets its own cgroup with a memory and a process limit, and every process listed
there is killed too. ``none`` can only kill the child's session: a daemonized descendant survives it.

The package, one concern a module: mechanism.py (what a mechanism and the limits are), detection.py (which
one works here), bubblewrap.py (its command line), cgroups.py (memory and process limits of a whole tree),
process.py (spawning and ending the tree) and trampoline.py (the first code run inside).
"""
from __future__ import annotations

from grader.sandbox.detection import detect
from grader.sandbox.mechanism import MECHANISMS, MODES, NONE, SANDBOX_USER, Guard, Limits, Mechanism, SandboxUnavailable
from grader.sandbox.process import Child, spawn

__all__ = ["Guard", "Limits", "Mechanism", "Child", "SandboxUnavailable", "detect", "spawn", "SANDBOX_USER", "MECHANISMS", "MODES", "NONE"]
