"""The whole tokenmgr API suite (test_tokenmgr_api.py) again, against STORE=etcd (issue 6).

The tests are imported unchanged; only the `start_tm` fixture they (and `tm`, `auth_tm`) use is
replaced: every tokenmgr of a test runs on one real etcd, under a key prefix of its own.
"""
import os
import uuid

import pytest

import procs
from etcd_util import etcd, etcd_env, kill_all, wait_synced  # noqa: F401 (fixture)
from test_tokenmgr_api import *  # noqa: F401,F403 (the suite, collected here once more)


@pytest.fixture
def start_tm(tmp_path, etcd):  # noqa: F811 (replaces the embedded-store fixture)
    prefix = f"/tokenmgr-test/{uuid.uuid4()}/"
    started = []

    def start(args=(), env=None, state_file=True, workdir=None):
        wd = workdir or str(tmp_path)
        os.makedirs(wd, exist_ok=True)
        full_env = etcd_env(etcd, prefix)
        full_env.update(env or {})
        t = procs.Tokenmgr(workdir=wd, args=list(args), env=full_env, state_file=False)
        started.append(t)
        t.start()
        wait_synced(t)
        return t

    yield start
    kill_all(started)
