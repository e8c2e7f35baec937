"""How a sandboxed program is confined: namespaces, mounts and capabilities around its process, a guard inside it.

`enter` and `drop_privileges` run in the forked child before the program starts; `guard` is the last
step before the program's code runs in the same interpreter. Like `sandbox_server`, this module
imports only the standard library: the fork server loads it from its file, outside the package.
"""

from __future__ import annotations

import _thread
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

FINISHED = "llmbench.sandbox.finished"  # raised by the sandbox once the program returned: writes the marker
ENDED = "llmbench.sandbox.ended"  # raised by the sandbox once the program raised: no marker, guard off
MARKER_BYTES = 32  # the marker's length: a completion pipe holding more is a forgery
_CLONE_NEWNS, _CLONE_NEWUSER = 0x00020000, 0x10000000
_NS = 0x00020000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000  # NS UTS IPC USER PID NET
_MS_FLAGS = {"nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024, "nodiratime": 2048, "relatime": 1 << 21}
_MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
_PR_CAPBSET_DROP, _PR_SET_SECUREBITS, _PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT = 24, 28, 38, 47
_SECURE_BITS = 0xEF  # NOROOT, NO_SETUID_FIXUP, NO_CAP_AMBIENT_RAISE, each locked; KEEP_CAPS locked off
_DENIED_EVENTS = frozenset(
    {
        "sys._getframe",
        "sys._current_frames",
        "sys._current_exceptions",
        "sys.settrace",
        "sys.setprofile",
        "sys.addaudithook",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
    }
)
_FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})


def enter(
    libc: Any, level: str, uid: int, tmp_size_mb: int, expose: list[str], conceal: list[str] | None = None
) -> None:
    """Switch to the program's identity: a locked read-only view, an unused uid, fresh namespaces.

    The view is built in a mount namespace of its own (as root: before dropping to `uid`; otherwise:
    inside a user namespace of the caller's), then the program's namespaces are entered from a further
    user namespace. Mounts copied into a namespace owned by another user namespace are locked: the
    program can neither unmount the tmpfs over `/tmp` nor make a read-only mount writable again.
    """
    if level == "rlimits":
        return
    root = os.geteuid() == 0
    if level == "uid":
        if not root:
            raise OSError("the 'uid' isolation level needs root")
        _become(libc, uid)
        return
    if root:
        _unshare(libc, _CLONE_NEWNS)
        make_private_view(libc, tmp_size_mb, expose, hide_private=True, conceal=conceal)
        _become(libc, uid)
    else:  # the caller's own files stay readable to it; only the world-writable ones are covered
        _enter_user_namespace(libc, _CLONE_NEWUSER | _CLONE_NEWNS)
        make_private_view(libc, tmp_size_mb, expose, hide_private=False, conceal=conceal)
    _enter_user_namespace(libc, _NS)


def drop_privileges(libc: Any, level: str) -> None:
    """In the program's process: no capabilities, no way to regain any (exec, setuid files, user namespaces)."""
    if level == "namespaces":  # root of its user namespace until now
        with contextlib.suppress(OSError), open("/proc/sys/user/max_user_namespaces", "w") as fh:
            fh.write("0")  # no nested user namespace (and no capabilities in one), where the kernel allows
        cap = 0
        while libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
            cap += 1
        libc.prctl(_PR_CAP_AMBIENT, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
        if libc.prctl(_PR_SET_SECUREBITS, _SECURE_BITS, 0, 0, 0) != 0:
            raise _os_error("prctl(PR_SET_SECUREBITS)")
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
        if libc.capset(header, (ctypes.c_uint32 * 6)()) != 0:
            raise _os_error("capset")
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise _os_error("prctl(PR_SET_NO_NEW_PRIVS)")


# Syscall numbers of what no judged program needs and any could use to reach the host: a socket (a
# pathname Unix socket is reachable across network namespaces), io_uring (which opens sockets without
# socket(2)), ptrace and cross-process memory access. Every other architecture is refused outright.
_SECCOMP_ARCH = {
    "x86_64": (0xC000003E, {"socket": 41, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311}),
    "aarch64": (
        0xC00000B7,
        {"socket": 198, "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271},
    ),
}
_IO_URING = (425, 426, 427)  # io_uring_setup, io_uring_enter, io_uring_register (the same on both)
_X32_BIT = 0x40000000


def deny_host_reach(libc: Any) -> bool:
    """Install a seccomp filter: `socket`, io_uring, ptrace and process_vm_* fail with EPERM from now on.

    Returns False where the architecture or the kernel knows no such filter (nothing is installed);
    raises where the kernel refuses it. Needs PR_SET_NO_NEW_PRIVS (set by `drop_privileges`).
    """
    arch = _SECCOMP_ARCH.get(os.uname().machine)
    if arch is None:
        return False
    audit_arch, numbers = arch
    denied = [*numbers.values(), *_IO_URING]
    ld_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    n = len(denied)
    # 0: arch; 1: foreign arch -> deny; 2: nr; 3: x32 -> deny; 4..4+n-1: each denied nr; then allow, deny
    deny_at = 4 + n + 1
    prog: list[tuple[int, int, int, int]] = [
        (ld_abs, 0, 0, 4),
        (jeq, 0, deny_at - 2, audit_arch),
        (ld_abs, 0, 0, 0),
        (jge, deny_at - 4, 0, _X32_BIT) if audit_arch == 0xC000003E else (jeq, 0, 0, 0xFFFFFFFF),
    ]
    for i, nr in enumerate(denied):
        prog.append((jeq, deny_at - (4 + i) - 1, 0, nr))
    prog += [(ret, 0, 0, allow), (ret, 0, 0, deny)]

    class Filter(ctypes.Structure):
        _fields_ = [
            ("code", ctypes.c_uint16),
            ("jt", ctypes.c_uint8),
            ("jf", ctypes.c_uint8),
            ("k", ctypes.c_uint32),
        ]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    filters = (Filter * len(prog))(*[Filter(*f) for f in prog])
    program = Program(len(prog), filters)
    if libc.prctl(22, 2, ctypes.byref(program), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        if ctypes.get_errno() == 22:  # EINVAL: a kernel built without seccomp filters
            return False
        raise _os_error("prctl(PR_SET_SECCOMP)")
    return True


def guard(done: int, key: int) -> None:
    """Make the completion marker, hand it to the server on `key`, and keep it out of the program's reach.

    Call it last before the program runs, from the frame that runs it. The marker then exists only in
    the closure of an audit hook, which refuses the events that reach frames, the objects of other
    code, or raw memory (`sys._getframe`, `tb_frame`, `gc.get_objects`, `ctypes`, `/proc/*/mem`, ...).
    `sys.audit(FINISHED)` from the calling frame writes the marker to `done`; `sys.audit(ENDED)` drops
    it; both switch the refusals off for the sandbox's own epilogue (printing a traceback needs frames).
    Everything the hook uses is bound here, so a program that rebinds builtins or this module's globals
    cannot change what it does.
    """
    marker = [os.urandom(MARKER_BYTES // 2).hex().encode()]
    os.write(key, marker[0])
    os.close(key)
    owner = sys._getframe(1)
    exempt = [0]  # the thread checking a caller right now, or -1 once the guard is off
    ident, getframe, write, str_type, bytes_type = _thread.get_ident, sys._getframe, os.write, str, bytes
    denied, frame_attributes = _DENIED_EVENTS, _FRAME_ATTRIBUTES
    finished, ended = FINISHED, ENDED
    refuse, refuse_frames = PermissionError, ValueError  # stdlib callers of _getframe fall back on ValueError

    def is_mem(path: Any) -> bool:
        if type(path) is bytes_type:
            path = path.decode("utf-8", "replace")
        return type(path) is str_type and path.rstrip("/").rpartition("/")[2] == "mem"

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if exempt[0] == -1 or exempt[0] == ident():
            return
        if event in (finished, ended):
            exempt[0] = ident()
            try:
                ours = getframe(1) is owner
            finally:
                exempt[0] = 0
            if not ours:
                raise refuse(f"{event} is the sandbox's own event")
            if event == finished:
                write(done, marker[0])
            marker.clear()
            exempt[0] = -1
        elif event == "sys._getframe":
            raise refuse_frames("frames are not available in the sandbox")
        elif (
            event in denied
            or event.startswith("ctypes.")
            or (event == "object.__getattr__" and type(args[1]) is str_type and args[1] in frame_attributes)
            or ((event == "open" or event == "os.symlink") and is_mem(args[0]))
        ):
            what = f"reading {args[1]}" if event == "object.__getattr__" else event
            raise refuse(f"{what} is not allowed in the sandbox")

    for name in [m for m in sys.modules if m.startswith("__llmbench")]:  # the sandbox's own modules
        del sys.modules[name]
    sys.addaudithook(hook)


def _become(libc: Any, uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: setuid cleared it, and /proc/self must stay ours


def _enter_user_namespace(libc: Any, flags: int) -> None:
    """Unshare `flags` (a new user namespace among them) and be root in it, mapped to who we were."""
    uid, gid = os.getuid(), os.getgid()
    _unshare(libc, flags)
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as fh:
            fh.write(text)


def _unshare(libc: Any, flags: int) -> None:
    if libc.unshare(flags) != 0:
        raise _os_error("unshare")


def _os_error(what: str) -> OSError:
    errno = ctypes.get_errno()
    return OSError(errno, f"{what}: {os.strerror(errno)}")


def mount(libc: Any, src: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> bool:
    def enc(text: str | None) -> bytes | None:
        return text.encode() if text is not None else None

    return bool(libc.mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) == 0)


def must_mount(
    libc: Any, src: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    if not mount(libc, src, target, fstype, flags, data):
        raise _os_error(f"mount {target}")


COVERED = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # world-writable: each gets an empty tmpfs


def make_private_view(
    libc: Any, tmp_size_mb: int, expose: list[str], hide_private: bool, conceal: list[str] | None = None
) -> None:
    """Every mount read-only, an empty tmpfs over world-writable (and, `hide_private`, private) directories,
    with the directories in `expose` (Python's own) still visible, read-only, wherever they live.

    Those under a directory about to be covered (a virtual environment in /tmp, a Python under /root)
    are held open first and bind-mounted back through /proc/self/fd once the cover is in place.
    """
    covered = [c for c in COVERED if os.path.isdir(c)]
    hidden = sorted({top for p in expose if (top := _hidden_ancestor(p)) and not _under(top, covered)})
    hidden = hidden if hide_private else []  # a private directory inside /tmp goes with /tmp's cover
    wanted = [c for c in (conceal or []) if os.path.isdir(c)]
    conceal = [c for c in wanted if not _under(c, covered)]
    tops = sorted(set(hidden) | set(conceal))
    hidden = [t for t in tops if not any(t != u and _under(t, [u]) for u in tops)]  # outermost only
    keep = [p for p in expose if _under(p, [*covered, *hidden])]
    held = [os.open(p, os.O_PATH | os.O_DIRECTORY) for p in keep]
    must_mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE, None)
    no_dev = _MS_FLAGS["nosuid"] | _MS_FLAGS["nodev"]
    for path in covered:
        data = f"size={tmp_size_mb}m,mode=1777"
        if path == "/tmp":
            must_mount(libc, "tmpfs", path, "tmpfs", no_dev, data)
        else:
            mount(libc, "tmpfs", path, "tmpfs", no_dev, data)
    for top in hidden:
        must_mount(libc, "tmpfs", top, "tmpfs", no_dev, "size=1m,mode=755")
    for path, fd in zip(keep, held, strict=True):
        os.makedirs(path, exist_ok=True)
        must_mount(libc, f"/proc/self/fd/{fd}", path, None, _MS_BIND | _MS_REC, None)
        os.close(fd)
    # What a directory brought back still holds (a package's data sets) goes again: also under a cover
    # (/tmp), where a checkout with its virtual environment may live.
    for path in wanted:
        if path not in hidden and _under(path, keep) and not any(_under(k, [path]) for k in keep):
            must_mount(libc, "tmpfs", path, "tmpfs", no_dev, "size=1m,mode=755")
    with open("/proc/self/mountinfo") as fh:
        mounts = [line.split() for line in fh]
    for parts in sorted(mounts, key=lambda p: len(p[4])):
        target = parts[4].replace("\\040", " ")
        if target in covered or target.split("/")[1] == "proc":  # the program's own /proc comes later
            continue
        flags = _MS_BIND | _MS_REMOUNT | _MS_RDONLY
        flags |= sum(_MS_FLAGS.get(opt, 0) for opt in parts[5].split(","))
        mount(libc, None, target, None, flags, None)


def _under(path: str, tops: list[str]) -> bool:
    return any(path == top or path.startswith(top + "/") for top in tops)


def _hidden_ancestor(path: str) -> str | None:
    """The top-most directory above `path` that others may not enter (e.g. /root), if any."""
    parts = os.path.abspath(path).split("/")[1:]
    for i in range(1, len(parts) + 1):
        top = "/" + "/".join(parts[:i])
        with contextlib.suppress(OSError):
            if not os.stat(top).st_mode & 0o001:
                return top
    return None


def python_paths(excluding: Sequence[str] = ()) -> list[str]:
    """Directories the program's interpreter reads: its prefixes and import path, outermost only.

    `excluding` (the harness's directories) are left out first, so that a checkout on the import path
    does not swallow the virtual environment inside it.
    """
    paths = sorted(
        {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, *sys.path) if p and os.path.isdir(p)}
        - set(excluding)
    )
    return [p for p in paths if not any(p.startswith(q + "/") for q in paths if q != p)]


def kill_program(child: int, grandchild: int, level: str, uid: int, code: int | None) -> int:
    """End every process the program started (its PID namespace, its uid, or at least its group).

    Returns the child's exit code: `code` when it was already reaped, else the one reaped here. The
    child is waited for only after the program is gone, so its namespace has finished dying on return.
    """
    if code is None:
        with contextlib.suppress(OSError):
            os.kill(grandchild or child, signal.SIGKILL)
        end = time.perf_counter() + 5
        while (pid_status := os.waitpid(child, os.WNOHANG))[0] == 0 and time.perf_counter() < end:
            time.sleep(0.001)
        if pid_status[0] == 0:
            os.kill(child, signal.SIGKILL)
            pid_status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(pid_status[1])
    if level == "rlimits" and grandchild:
        with contextlib.suppress(OSError):
            os.killpg(grandchild, signal.SIGKILL)
    if level == "uid":  # a process of the program's own uid may signal every other one of them
        reaper = os.fork()
        if reaper == 0:
            with contextlib.suppress(BaseException):
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)
            os._exit(0)
        os.waitpid(reaper, 0)
    return code


def count_own_processes() -> int:
    """Processes of our uid already running (RLIMIT_NPROC counts them all outside a user namespace)."""
    uid, n = os.getuid(), 0
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            n += entry.isdigit() and os.stat(f"/proc/{entry}").st_uid == uid
    return n
