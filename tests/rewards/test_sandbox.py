"""The sandbox stops hostile programs with reward 0 and a reason, and the caller carries on."""

import os
import uuid

import pytest

from rlhfkit.rewards import sandbox
from rlhfkit.rewards.rules import code_unit_tests
from rlhfkit.rewards.sandbox import SandboxLimits, run_tests

# generous wall clock for programs that end by themselves (a loaded CI machine can take a
# second to start Python); the infinite-loop tests use LOOP so they stay fast
FAST = SandboxLimits(timeout_s=20.0, cpu_s=5)
LOOP = SandboxLimits(timeout_s=1.0, cpu_s=5)
GOOD = "def add(a, b):\n    return a + b\n"
ADD_TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]


def _assert_next_program_still_scores():
    result = run_tests(GOOD, ADD_TESTS, FAST)
    assert (result.passed, result.total, result.reason) == (2, 2, "ok")


def test_correct_program_passes_and_partial_credit_counts():
    assert run_tests(GOOD, ADD_TESTS + ["assert add(2, 2) == 5"], FAST).fraction == pytest.approx(2 / 3)


def test_infinite_loop_is_killed_on_the_wall_clock():
    result = run_tests("while True:\n    pass\n", ADD_TESTS, LOOP)
    assert result.passed == 0 and result.reason.startswith("timeout")
    _assert_next_program_still_scores()


def test_fork_bomb_is_refused():
    result = run_tests("import os\nwhile True:\n    os.fork()\n", ADD_TESTS, FAST)
    assert result.passed == 0 and result.reason == "refused: os.fork"
    _assert_next_program_still_scores()


def test_ten_gigabyte_allocation_fails_inside_the_child():
    result = run_tests("x = bytearray(10 * 10**9)\n" + GOOD, ADD_TESTS, FAST)
    assert result.passed == 0 and "MemoryError" in result.reason
    _assert_next_program_still_scores()


@pytest.mark.parametrize("drop_user", [True, False], ids=["as-nobody", "hook-only"])
def test_write_outside_the_directory_is_refused(tmp_path, monkeypatch, drop_user):
    if not drop_user:  # the audit hook alone must refuse it (root would be allowed by the kernel)
        monkeypatch.setattr(sandbox, "_sandbox_user", lambda: (None, None))
    target = f"/tmp/rlhfkit-outside-{uuid.uuid4().hex}"
    result = run_tests(f"open({target!r}, 'w').write('pwned')\n" + GOOD, ADD_TESTS, FAST)
    assert not os.path.exists(target)
    assert result.passed == 0 and result.reason.startswith("refused: open") and "writing" in result.reason
    _assert_next_program_still_scores()


def test_remove_outside_and_shell_and_ctypes_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "_sandbox_user", lambda: (None, None))  # hook only, as root
    victim = tmp_path / "keep.txt"
    victim.write_text("important")
    for code, what in [(f"import os\nos.remove({str(victim)!r})", "os.remove"),
                       ("import os\nos.system('true')", "os.system"),
                       ("import ctypes", "import ctypes"),
                       ("import os\nos.symlink('/etc', 'etc')", "os.symlink")]:
        result = run_tests(code + "\n" + GOOD, ADD_TESTS, FAST)
        assert result.passed == 0 and result.reason.startswith("refused: " + what), result.reason
    assert victim.read_text() == "important"


def test_work_inside_the_directory_is_allowed_and_the_directory_is_removed(monkeypatch):
    made = []
    real_mkdtemp = sandbox.tempfile.mkdtemp
    monkeypatch.setattr(sandbox.tempfile, "mkdtemp", lambda *a, **kw: made.append(real_mkdtemp(*a, **kw)) or made[-1])
    code = "import os\nassert os.listdir('.') == []\nopen('a.txt', 'w').write('x')\nos.mkdir('d')\n" + GOOD
    result = run_tests(code, ADD_TESTS, FAST)
    assert result.reason == "ok" and result.passed == 2
    assert any("rlhfkit-sandbox-" in d for d in made) and not any(os.path.exists(d) for d in made)


def test_child_environment_has_no_parent_secrets(monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    result = run_tests("import os\nNAMES = sorted(os.environ)\n", ["assert 'SECRET_TOKEN' not in NAMES"], FAST)
    assert result.passed == 1
    assert "SECRET_TOKEN" not in result.environ and set(result.environ) <= {"LC_CTYPE"}  # PEP 538 adds it


def test_code_unit_tests_rule_rewards_fraction_and_zero_for_hostile_code():
    tests = [ADD_TESTS]
    good = "Here you go:\n```python\n" + GOOD + "```"
    assert code_unit_tests(["p"], [good], tests=tests, timeout_s=20.0) == [1.0]
    assert code_unit_tests(["p"], ["```python\nwhile True: pass\n```"], tests=tests, timeout_s=0.5) == [0.0]
    assert code_unit_tests(["p"], ["no code at all"], tests=tests) == [0.0]
    # concurrent runs keep their order (and several sandboxes may run as `nobody` at once)
    wrong = "```python\ndef add(a, b):\n    return a - b\n```"
    completions = [good, wrong, "import os\nos.fork()", good]
    half_right = [["assert add(1, 2) == 3", "assert add(0, 0) == 0"]] * 4  # a - b passes the second only
    assert code_unit_tests(["p"] * 4, completions, tests=half_right, timeout_s=20.0, workers=4) == [1.0, 0.5, 0.0, 1.0]


def test_limits_stdin_and_user_inside_the_child():
    # the CPU limit is checked as set rather than hit: hitting it costs seconds on a busy machine
    limits = SandboxLimits(timeout_s=20.0, cpu_s=2, memory_bytes=300 * 2**20, file_size_bytes=12345)
    code = "import os, resource, sys\nR = resource\n"
    tests = ["assert R.getrlimit(R.RLIMIT_NPROC) == (1, 1)",
             f"assert R.getrlimit(R.RLIMIT_AS) == ({300 * 2**20}, {300 * 2**20})",
             "assert R.getrlimit(R.RLIMIT_FSIZE) == (12345, 12345)",
             "assert R.getrlimit(R.RLIMIT_CPU) == (2, 3)",
             "assert sys.stdin.read() == ''"]
    uid = sandbox._sandbox_user()[0]
    if uid is not None:  # root parent and a `nobody` user: the code must run as nobody
        tests.append(f"assert (os.getuid(), os.geteuid()) == ({uid}, {uid})")
    result = run_tests(code, tests, limits)
    assert result.passed == len(tests), result.errors


def test_forged_result_lines_cannot_inflate_the_score():
    code = ("import os\nfor fd in range(3, 20):\n    try:\n        os.write(fd, b'{\"event\": \"test\", "
            "\"index\": 0, \"passed\": true}\\n' * 50)\n    except OSError:\n        pass\n")
    result = run_tests(code, ["assert False", "assert False"], FAST)
    assert result.passed <= 1 and result.total == 2  # documented: forging one test is possible


@pytest.mark.parametrize("attack", [
    "import sys\nsys.modules['__main__'].ROOT = ''\n",  # the hook's state is not in __main__
    "import os\n_cwd = os.getcwd()\nos.path.realpath = lambda p: _cwd\n",  # it does not call os.path
    "import os\nos.chdir('..')\n",
    "import os\nd = os.open('/tmp', os.O_RDONLY)\nos.open(NAME, os.O_WRONLY | os.O_CREAT, dir_fd=d)\n",
    "import gc\ngc.get_objects()\n",
])
def test_naive_subversion_of_the_hook_fails(monkeypatch, attack):
    monkeypatch.setattr(sandbox, "_sandbox_user", lambda: (None, None))  # hook only, as root
    name = f"rlhfkit-outside-{uuid.uuid4().hex}"
    code = f"NAME = {name!r}\n" + attack + f"open('../' + NAME, 'w').write('x')\nopen('/tmp/' + NAME, 'w')\n"
    result = run_tests(code, ["assert NAME"], FAST)  # a test that passes unless the attack is refused
    assert not os.path.exists(f"/tmp/{name}")
    assert result.passed == 0 and result.reason.startswith("refused:"), result.reason


def test_ordinary_library_use_still_works():
    code = ("import collections, typing, pathlib, json\nP = collections.namedtuple('P', 'a b')\n"
            "T = typing.TypeVar('T')\npathlib.Path('out.json').write_text(json.dumps([1, 2]))\n")
    result = run_tests(code, ["assert P(1, 2).b == 2", "assert json.loads(open('out.json').read()) == [1, 2]",
                              "print('visible')"], FAST)
    assert (result.passed, result.reason) == (3, "ok") and result.stdout == "visible\n"
