"""Running untrusted, model-written Python against unit tests, in a limited child process.

What ``run_tests`` does, layer by layer (each layer is independent of the others):

1. Process: ``sys.executable -I -S -B -u`` (no site-packages, no PYTHON* variables, no user
   site, no .pyc writes) in a new session, so a timeout kills the whole process group.
   The environment is EMPTY (no inherited secrets; CPython may add ``LC_CTYPE`` itself,
   PEP 538); stdin is /dev/null; stdout/stderr go to files the parent owns, read back
   truncated. We avoid ``preexec_fn`` (unsafe in a multi-threaded trainer): the child's own
   bootstrap code applies everything below before a line of untrusted code runs.
2. Identity: when the parent runs as root and the user ``nobody`` exists, the bootstrap drops
   to it (setgroups([]), setgid, setuid) after pre-importing common stdlib modules, because
   the interpreter's files may be unreadable by ``nobody`` (e.g. under /root/.pyenv). Other
   stdlib modules may then fail to import; pure-Python solutions need none.
3. Limits (setrlimit): CPU seconds, address space (memory), file size, no core files, and
   RLIMIT_NPROC = 1 (no new process or thread for a non-root user). A wall-clock timeout in
   the parent kills the process group with SIGKILL.
4. Working directory: a fresh empty temporary directory (owned by the sandbox user), removed
   afterwards.
5. Audit hook (``sys.addaudithook``, installed before the untrusted code runs) refuses:
   opening for writing, or opening a directory, outside the working directory (so no
   directory descriptor outside it exists for ``dir_fd=`` tricks); remove, rmdir, mkdir,
   chmod, chown, rename/replace, truncate, utime, chdir, rmtree outside it, by descriptor or
   relative to a ``dir_fd``; every symlink/hard link; fork, exec, system, posix_spawn,
   subprocess; kill; setrlimit; sockets; ctypes (and importing ctypes/_posixsubprocess);
   sys.settrace/setprofile and gc introspection (they could reach the hook). The hook's
   state is reachable only through its closure, and it calls only functions captured before
   the untrusted code ran, so rebinding ``os.path.realpath`` or ``__main__`` globals does not
   weaken it. Each refusal raises PermissionError in the child and is recorded.

What is NOT protected: this is not a security boundary against a determined attacker. The
hook is Python-level: code that patches pathlib's classes, or finds another way into the
interpreter's internals, can subvert it; code in the same interpreter can also forge the
result line of a test it did not pass (the parent counts each test index once). Reading
world-readable files is allowed. Kernel exploits and side channels are not addressed; without
``nobody`` (a non-root parent, or no such user) file permissions are those of the parent user.
Networking is refused only by the hook (no network namespace). For production, run this inside
a container or VM with no network and a read-only filesystem (e.g. gVisor, Firecracker,
nsjail); this module is a guard against accidents and naive reward hacking, with rlimits and
the unprivileged user as a backstop.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

MAX_PAYLOAD_BYTES = 100_000  # one argv string must stay under Linux's MAX_ARG_STRLEN (128 KiB)
PREIMPORTS = ("math", "re", "itertools", "functools", "collections", "heapq", "bisect", "string",
              "json", "typing", "dataclasses", "fractions", "decimal", "statistics", "random",
              "operator", "copy")


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 5.0  # wall clock for the whole run
    cpu_s: int = 5  # RLIMIT_CPU soft limit (SIGXCPU); the hard limit is one second more
    memory_bytes: int = 512 * 2**20  # RLIMIT_AS
    file_size_bytes: int = 2**20  # RLIMIT_FSIZE, also caps stdout/stderr
    max_output_chars: int = 4000  # stdout/stderr kept in the result


@dataclass
class SandboxResult:
    passed: int
    total: int
    reason: str  # "ok", "timeout ...", "code raised ...", "killed by ...", "refused: ..."
    refused: list[str] = field(default_factory=list)  # audit events the hook refused
    errors: list[str] = field(default_factory=list)  # one line per failed test
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    environ: list[str] = field(default_factory=list)  # variable names the child saw

    @property
    def fraction(self) -> float:
        return self.passed / self.total if self.total else 0.0


_BOOTSTRAP = r'''
def _install():
    # The hook's state lives only in closures made here; once this returns, no frame or global
    # the untrusted code can reach refers to it. The hook uses only primitives captured here,
    # so re-binding os.path.realpath, builtins.isinstance, ... later changes nothing it checks.
    import sys, os, json, resource, posix, pathlib, _json
    p = json.loads(sys.argv[1]); del sys.argv[1:]
    for name in p["preimports"]:
        try: __import__(name)
        except Exception: pass
    os.chdir(p["root"])
    if os.getuid() == 0 and p["uid"] is not None:
        os.setgroups([]); os.setgid(p["gid"]); os.setuid(p["uid"])
    for lim, soft, hard in ((resource.RLIMIT_CPU, p["cpu"], p["cpu"] + 1), (resource.RLIMIT_AS, p["mem"], p["mem"]),
                            (resource.RLIMIT_FSIZE, p["fsize"], p["fsize"]), (resource.RLIMIT_CORE, 0, 0),
                            (resource.RLIMIT_NPROC, 1, 1)):
        resource.setrlimit(lim, (soft, hard))
    fd, write, dumps, getcwd, stat, fspath = p["result_fd"], posix.write, json.dumps, posix.getcwd, posix.stat, posix.fspath
    _type, _str, _bytes, _int, _len, _any, _all, _tuple = type, str, bytes, int, len, any, all, tuple
    _PermissionError, _OSError, split = PermissionError, OSError, str.split
    quote = _json.encode_basestring_ascii  # C code: no Python the untrusted code could patch
    Posix, PurePosix = pathlib.PosixPath, pathlib.PurePosixPath
    pure_str = pathlib.PurePath.__str__  # pathlib's own conversion, captured before any patching
    def emit(**kw):
        write(fd, (dumps(kw) + "\n").encode())
    def checked_type(path):
        # identity, not ==: a metaclass could define __eq__ and run code inside the hook
        t = _type(path)
        return t is _str or t is _bytes or t is Posix or t is PurePosix
    def shown(path):
        return path if _type(path) is _str else "<%s path>" % _type(path).__name__
    emit(event="start", environ=sorted(os.environ))
    ROOT = os.path.realpath(p["root"])
    WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    DENY = {"os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen",
            "os.kill", "os.killpg", "signal.pthread_kill", "resource.setrlimit", "resource.prlimit",
            "os.symlink", "os.link", "socket.__new__", "socket.connect", "socket.bind", "socket.sendto",
            "socket.getaddrinfo", "os.putenv", "os.unsetenv", "sys.addaudithook",
            # a tracer or the garbage collector could reach the hook's closure
            "sys.settrace", "sys.setprofile", "gc.get_objects", "gc.get_referrers", "gc.get_referents"}
    # event -> (indices of path arguments, indices of dir_fd arguments)
    PATHS = {"os.remove": ((0,), (1,)), "os.rmdir": ((0,), (1,)), "os.mkdir": ((0,), (2,)),
             "os.chmod": ((0,), (2,)), "os.chown": ((0,), (3,)), "os.rename": ((0, 1), (2, 3)),
             "os.truncate": ((0,), ()), "os.utime": ((0,), (3,)), "os.chdir": ((0,), ()),
             "shutil.rmtree": ((0,), (1,)), "os.chflags": ((0,), ()), "os.lchflags": ((0,), ()),
             "os.setxattr": ((0,), ()), "os.removexattr": ((0,), ())}
    NO_IMPORT = {"ctypes", "_ctypes", "_posixsubprocess", "_socket"}
    def absolute(path):
        # lexical normalisation is enough: ROOT is fresh and creating links is refused
        path = fspath(path) if _type(path) is _str or _type(path) is _bytes else pure_str(path)
        if _type(path) is _bytes:
            path = path.decode("utf-8", "surrogateescape")
        if not path.startswith("/"):
            path = getcwd() + "/" + path
        parts = []
        for part in path.split("/"):
            if part == "..":
                parts = parts[:-1]
            elif part and part != ".":
                parts.append(part)
        return "/" + "/".join(parts)
    def inside(path):
        # exact types only: a PathLike subclass could answer differently to hook and syscall
        if not checked_type(path):
            return False
        full = absolute(path)
        return full == ROOT or full.startswith(ROOT + "/")
    def is_dir(path):
        try:
            return stat(path).st_mode & 0o170000 == 0o040000
        except _OSError:
            return False
    def refuse(what):
        write(fd, ('{"event": "refused", "what": ' + quote(what) + "}\n").encode())
        raise _PermissionError("sandbox refused " + what)
    def hook(event, args):
        if event in DENY or event.startswith("ctypes."):
            refuse(event)
        elif event == "import" and split(_str(args[0]), ".")[0] in NO_IMPORT:
            refuse("import " + _str(args[0]))
        elif event == "open":
            path, mode, flags = args
            if _type(path) is _int or inside(path):
                return  # an already open descriptor, or a file in the sandbox
            writing = flags & WRITE != 0 or (_type(mode) is _str and _any(c in mode for c in "wax+"))
            if writing:
                refuse("open %r for writing outside the sandbox" % (shown(path),))
            if not checked_type(path) or is_dir(path):
                refuse("open %r (a directory or an unchecked path type) outside the sandbox" % (shown(path),))
        elif event in PATHS:
            paths, fds = PATHS[event]
            # an int path is a descriptor (fchmod, ftruncate, ...): refused, its file is unknown
            if _any(args[i] not in (None, -1) for i in fds if i < _len(args)) or not _all(inside(args[i]) for i in paths):
                refuse("%s %r" % (event, _tuple(shown(args[i]) for i in paths)))
    sys.addaudithook(hook)
    return emit, p["code"], p["tests"]
def _run(emit, code, tests):
    ns = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(code, "<completion>", "exec"), ns)
    except BaseException as err:
        emit(event="code_error", error=("%s: %s" % (type(err).__name__, err))[:300])
        return
    for i, test in enumerate(tests):
        try:
            exec(compile(test, "<test %d>" % i, "exec"), ns)
            emit(event="test", index=i, passed=True)
        except BaseException as err:
            emit(event="test", index=i, passed=False, error=("%s: %s" % (type(err).__name__, err))[:300])
    emit(event="done")
_run(*_install())
import os
os._exit(0)
'''


def _sandbox_user() -> tuple[int | None, int | None]:
    """(uid, gid) of ``nobody`` when we are root and it exists, else (None, None)."""
    if os.geteuid() != 0:
        return None, None
    try:
        import pwd

        entry = pwd.getpwnam("nobody")
    except (KeyError, ImportError):
        return None, None
    return entry.pw_uid, entry.pw_gid


def _read(path: str, limit: int) -> str:
    with open(path, "rb") as fh:
        return fh.read(limit).decode("utf-8", "replace")


def _parse_events(text: str) -> list[dict]:
    events = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def _summarise(events: list[dict], total: int, returncode: int | None, timed_out: bool,
               limits: SandboxLimits) -> SandboxResult:
    # distinct in-range indices only, so repeated or stray lines cannot inflate the count
    passed = len({e.get("index") for e in events if e.get("event") == "test" and e.get("passed") is True
                  and type(e.get("index")) is int and 0 <= e["index"] < total})
    refused = [str(e.get("what")) for e in events if e.get("event") == "refused"]
    errors = [str(e.get("error")) for e in events if e.get("event") in ("test", "code_error") and e.get("error")]
    environ = next((e.get("environ", []) for e in events if e.get("event") == "start"), [])
    code_error = next((str(e.get("error")) for e in events if e.get("event") == "code_error"), None)
    if timed_out:
        reason = f"timeout after {limits.timeout_s:g} s wall clock"
    elif returncode is not None and returncode < 0:
        sig = -returncode
        names = {signal.SIGXCPU: "CPU time limit", signal.SIGXFSZ: "file size limit",
                 signal.SIGKILL: "SIGKILL (CPU hard limit or out of memory)"}
        try:
            name = names.get(sig, signal.Signals(sig).name)
        except ValueError:
            name = f"signal {sig}"
        reason = f"killed by {name}"
    elif refused:
        reason = "refused: " + refused[0]
    elif code_error is not None:
        reason = "code raised " + code_error
    elif not any(e.get("event") == "done" for e in events):
        reason = f"exited early with status {returncode}"
    else:
        reason = "ok"
    return SandboxResult(passed, total, reason, refused, errors, returncode, environ=environ)


def run_tests(code: str, tests: list[str], limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    """Run ``code`` then each test snippet (e.g. ``"assert add(2, 3) == 5"``) in one sandboxed
    child; ``passed`` counts the tests that ran without raising. Never raises for bad code."""
    tests = [str(t) for t in tests]
    uid, gid = _sandbox_user()
    with tempfile.TemporaryDirectory(prefix="rlhfkit-io-") as io_dir:
        root = tempfile.mkdtemp(prefix="rlhfkit-sandbox-")
        try:
            if uid is not None:
                try:
                    os.chown(root, uid, gid)
                except OSError:  # e.g. a user namespace without that uid: run without dropping
                    uid = gid = None
            result_path = os.path.join(io_dir, "result")
            with open(result_path, "wb") as res, open(os.path.join(io_dir, "out"), "wb") as out, \
                    open(os.path.join(io_dir, "err"), "wb") as err:
                payload = json.dumps({"code": code, "tests": tests, "root": root, "uid": uid, "gid": gid,
                                      "cpu": int(limits.cpu_s), "mem": int(limits.memory_bytes),
                                      "fsize": int(limits.file_size_bytes), "preimports": PREIMPORTS,
                                      "result_fd": res.fileno()})
                if len(payload.encode()) > MAX_PAYLOAD_BYTES:
                    return SandboxResult(0, len(tests), f"program and tests exceed {MAX_PAYLOAD_BYTES} bytes")
                # no preexec_fn (unsafe with threads): the child's bootstrap applies every limit
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-B", "-u", "-c", _BOOTSTRAP, payload],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, env={}, cwd=root,
                    pass_fds=(res.fileno(),), close_fds=True, start_new_session=True,
                )
                timed_out = False
                try:
                    proc.wait(timeout=limits.timeout_s)
                except subprocess.TimeoutExpired:
                    timed_out = True
                _kill_group(proc)  # also after a normal exit: nothing of the group may outlive it
            result = _summarise(_parse_events(_read(result_path, 1_000_000)), len(tests), proc.returncode,
                                timed_out, limits)
            result.stdout = _read(os.path.join(io_dir, "out"), limits.max_output_chars)
            result.stderr = _read(os.path.join(io_dir, "err"), limits.max_output_chars)
            return result
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
