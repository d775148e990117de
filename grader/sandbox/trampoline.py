"""Runs first inside the sandbox, as the same interpreter (``python -I -S -c <this file's text> SPEC
COMMAND...``): joins the sandbox's cgroup, sets the rlimits, drops to the sandbox's uid (root only), forbids
new user namespaces and execs the command. Standard library only, no site. Kept as a file so that it reads and
lints as code; its text is passed with -c, because the sandbox shows the child nothing of the grader's own
folders."""
import ctypes, json, os, resource, struct, sys  # now: after the drop below, the interpreter's files may be out of reach
spec = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4  # a pointer does not fit ctypes' default int


def no_user_namespaces() -> bytes:
    """A seccomp filter (classic BPF) that fails every unshare/clone asking for a new user namespace (EPERM),
    every setns (EPERM) and clone3 (ENOSYS: its flags lie in memory a filter cannot read; the C library then
    falls back to clone). A user namespace is where an unprivileged process gets capabilities, and so the
    kernel code it could otherwise never reach."""
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    # (arch, its syscall numbers: unshare, clone, clone3, setns); args[0] (the flags) of unshare and clone
    tables = [(0xC000003E, (272, 56, 435, 308)), (0xC00000B7, (97, 220, 435, 268))]  # x86-64, aarch64
    prog = []  # (code, jump if true -> label, jump if false -> label, k); labels resolved below
    prog.append((ld, None, None, 4))  # the architecture
    for arch, _ in tables:
        prog.append((jeq, f"arch{arch}", None, arch))
    prog.append((ret, None, None, allow))
    for arch, (unshare, clone, clone3, setns) in tables:
        prog += [("label", f"arch{arch}"), (ld, None, None, 0)]  # the syscall number
        if arch == 0xC000003E:
            prog.append((jge, "eperm", None, 0x40000000))  # the x32 ABI: none of our code uses it
        prog += [(jeq, "flags", None, unshare), (jeq, "flags", None, clone), (jeq, "enosys", None, clone3),
                 (jeq, "eperm", None, setns), (ret, None, None, allow)]
    prog += [("label", "flags"), (ld, None, None, 16), (jset, "eperm", None, 0x10000000),  # CLONE_NEWUSER
             (ret, None, None, allow), ("label", "eperm"), (ret, None, None, eperm),
             ("label", "enosys"), (ret, None, None, enosys)]
    where, n = {}, 0
    for item in prog:
        if item[0] == "label":
            where[item[1]] = n
        else:
            n += 1
    code, n = b"", 0
    for item in prog:
        if item[0] == "label":
            continue
        op, true, false, k = item
        jt = where[true] - n - 1 if true else 0
        jf = where[false] - n - 1 if false else 0
        code += struct.pack("HBBI", op, jt, jf, k)
        n += 1
    return code


def forbid_user_namespaces() -> None:
    code = no_user_namespaces()
    buffer = ctypes.create_string_buffer(code)
    fprog = struct.pack("HxxxxxxP" if struct.calcsize("P") == 8 else "HxxP", len(code) // 8,
                        ctypes.addressof(buffer))
    prog = ctypes.create_string_buffer(fprog)
    # prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog): needs no_new_privs, set before this
    if libc.prctl(22, 2, ctypes.addressof(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


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
        if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if spec["userns"]:
        forbid_user_namespaces()
    os.chdir(spec["cwd"])
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as err:
    os.write(2, f"sandbox: cannot start {sys.argv[2]}: {err}\n".encode())
    os._exit(126)
