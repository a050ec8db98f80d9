"""tokenmgr's embedded store on the real binary: fencing tokens after the state file is lost,
what a restart logs, and `tokenmgr state show`."""
import json
import os

import procs
from tokenmgr_util import SLOT_BYTES, Client, run_binary, start_tm  # noqa: F401


def _grant_and_release(port):
    c = Client(port)
    s, g = c.lock(0, holder="n6")
    assert s == 200
    assert c.release(g["id"])[0] == 200
    c.close()
    return g["token"]


def test_deleted_state_file_restarts_above_the_last_token(start_tm):
    # The documented recovery from a corrupt state file: move it aside, restart.
    t = start_tm()
    last = max(_grant_and_release(t.port) for _ in range(3))
    assert t.stop() == 0
    os.unlink(t.state_file)
    t2 = start_tm(workdir=t.workdir)
    assert _grant_and_release(t2.port) > last


def test_restart_logs_what_it_restored_and_the_next_token(start_tm):
    t = start_tm()
    c = Client(t.port)
    s, g = c.lock(0, holder="node-4", ttl=60)
    assert s == 200
    assert t.stop() == 0
    t2 = start_tm(workdir=t.workdir)
    line = procs.wait_for(
        lambda: next((ln for ln in t2.logs().splitlines() if "lock state restored from" in ln),
                     None), what="restore log line")
    assert "lease of 'node-4' (token %d) kept" % g["token"] in line, line
    assert "next token %d" % (g["token"] + 1) in line or "clock floor" in line, line
    assert "waiters are not persisted" in line, line


def test_state_show_prints_the_real_state_file_as_json(start_tm):
    t = start_tm()
    c = Client(t.port)
    s, g = c.lock(0, holder="node-2", ttl=60)
    assert s == 200
    rc, out = run_binary(["state", "show", t.state_file])
    assert rc == 0, out
    j = json.loads(out)
    assert j["file"] == t.state_file and j["format"] == 2 and j["slot_used"] in (0, 1)
    assert j["last_token"] == g["token"] and j["next_token_if_started_now"] > g["token"]
    assert j["lease"]["holder"] == "node-2" and j["lease"]["token"] == g["token"]
    assert g["id"] not in out  # the capability to release is not printed
    assert j["problems"] == []


def test_state_show_on_a_corrupt_file_fails_with_a_clear_message(tmp_path):
    bad = tmp_path / "tokenmgr.state"
    bad.write_bytes(b"lmstate2 " + b"\x00" * 8000)
    rc, out = run_binary(["state", "show", str(bad)])
    assert rc == 1, out
    assert "DATA_LOSS" in out and str(bad) in out and "move the file aside" in out, out
    rc, out = run_binary(["state", "show", str(tmp_path / "missing")])
    assert rc == 1 and "missing" in out, out
    rc, out = run_binary(["state", "show"])
    assert rc == 2 and "usage: tokenmgr state show FILE" in out, out


def test_falling_back_to_the_older_slot_is_a_warning_with_the_reason(start_tm):
    t = start_tm()
    c = Client(t.port)
    _, g = c.lock(0, holder="w", ttl=60)
    c.release(g["id"])
    c.close()
    assert t.stop() == 0
    raw = bytearray(open(t.state_file, "rb").read())
    newest = max(range(2), key=lambda i: raw[i * SLOT_BYTES:i * SLOT_BYTES + 33])
    raw[newest * SLOT_BYTES + 60] ^= 0x01
    open(t.state_file, "wb").write(bytes(raw))
    rc, out = run_binary(["state", "show", t.state_file])  # before tokenmgr rewrites the slot
    assert rc == 0 and f"slot {newest} torn" in json.loads(out)["problems"][0], out
    t2 = start_tm(workdir=t.workdir)
    line = procs.wait_for(
        lambda: next((ln for ln in t2.logs().splitlines() if "torn" in ln), None),
        what="fallback warning")
    assert "warn" in line.lower() and f"slot {newest} torn" in line, line
    assert f"used slot {1 - newest}" in line, line
