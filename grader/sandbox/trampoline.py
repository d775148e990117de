"""Runs first inside the sandbox, as the same interpreter (``python -I -S -c <this file's text> SPEC
COMMAND...``): joins the sandbox's cgroup, sets the rlimits, drops to the sandbox user (root only) and
execs the command. Standard library only, no site. Kept as a file so that it reads and lints as code; its
text is passed with -c, because the sandbox shows the child nothing of the grader's own folders."""
import json, os, resource, sys
spec = json.loads(sys.argv[1])
if spec["no_new_privs"]:
    import ctypes  # now: after the drop below, the interpreter's own files may be out of reach
try:
    for fd in spec["cgroup_fds"]:
        os.write(fd, b"0")
        os.close(fd)
    if spec["init"]:
        # First process of a new pid namespace (as bubblewrap's is): reap orphans, and when the command
        # ends, exit with its status; the kernel then kills whatever is left in the namespace.
        command = os.fork()
        while command:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                os._exit(125)
            if pid == command:
                os._exit(status >> 8 if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
        os.setsid()
    for name, soft, hard in spec["rlimits"]:
        resource.setrlimit(getattr(resource, name), (soft, hard))
    if spec["uid"] is not None:
        os.setgroups([])
        os.setresgid(spec["gid"], spec["gid"], spec["gid"])
        os.setresuid(spec["uid"], spec["uid"], spec["uid"])
    if spec["no_new_privs"]:
        if ctypes.CDLL(None, use_errno=True).prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    os.chdir(spec["cwd"])
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as err:
    os.write(2, f"sandbox: cannot start {sys.argv[2]}: {err}\n".encode())
    os._exit(126)
