"""The C decoders under AddressSanitizer: the fuzz and property tests of the
books, the feed and the state messages run again against ``dpdk._native_asan``
(built by ``make build``) in a child Python with libasan preloaded. Any invalid
read or write aborts that child with ASan's report. An integration test: the
nested run takes minutes (its own timeout is 900 s)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import dpdk

ROOT = pathlib.Path(__file__).resolve().parents[2]
SUITES = ["tests/unit/test_c_book.py", "tests/unit/test_c_feed.py", "tests/unit/test_c_state.py",
          "tests/unit/test_risk.py", "tests/unit/test_strategy.py", "tests/unit/test_ouch_parser.py",
          "tests/unit/test_ouch_answers.py",
          "tests/unit/test_recorder.py"]


def libasan() -> str:
    path = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert os.path.isabs(path) and os.path.exists(path), f"libasan.so not found ({path!r}): install gcc"
    return path


def test_the_asan_build_is_instrumented():
    so = next(pathlib.Path(dpdk.__file__).parent.glob("_native_asan*.so"), None)
    assert so is not None, "dpdk._native_asan is not built: run `make build`"
    undefined = subprocess.run(["nm", "-u", str(so)], capture_output=True, text=True, check=True).stdout
    assert "__asan_report_load8" in undefined and "__asan_report_store1" in undefined


def test_the_c_fuzz_and_property_tests_pass_under_addresssanitizer():
    env = dict(os.environ, LD_PRELOAD=libasan(), TICKWIRE_NATIVE="asan",
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1")
    which = subprocess.run([sys.executable, "-c", "import dpdk, dpdk._native_asan as m; "
                            "assert dpdk.native()[1] is m.lib; print('asan')"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert which.stdout.strip() == "asan", which.stderr[-2000:]
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITES,
                          "-k", "not test_the_asan"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    out = res.stdout + res.stderr
    assert "AddressSanitizer" not in out, out[-6000:]
    assert res.returncode == 0, out[-6000:]
    assert " passed" in res.stdout and " failed" not in res.stdout
