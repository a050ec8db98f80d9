"""Security points of docs/security.md not already covered by the other e2e modules.

The rest (symlink and `..` tricks, host dir symlink, file modes, header/body/connection/waiter
bounds, auth, text-format logs) are tested in test_license_holder.py, test_tokenmgr_api.py and
test_tokenmgr_concurrency.py; docs/security.md lists which test covers what."""
import json

import procs
from tokenmgr_util import Client, start_tm  # noqa: F401 (fixture)

SECRET = "json-Log_s3cret.token-7f3a"


def test_auth_token_never_in_json_logs(start_tm, tmp_path):  # noqa: F811
    token_file = tmp_path / "token"
    token_file.write_text(SECRET + "\n")
    tm = start_tm(args=["--auth-token-file", str(token_file)], env={"LOG_FORMAT": "json"})
    good = Client(tm.port, headers={"Authorization": "Bearer " + SECRET})
    wrong = Client(tm.port, headers={"Authorization": "Bearer " + SECRET + "x"})
    _, grant = good.lock(0)
    assert wrong.lock(0)[0] == 401
    assert wrong.release(grant["id"])[0] == 401
    assert procs.request(tm.port, "GET", "/api/token/lock/0",
                         headers={"Authorization": SECRET})[0] == 401
    assert good.release(grant["id"])[0] == 200
    assert tm.stop() == 0
    logs = tm.logs()
    lines = [line for line in logs.splitlines() if line.strip()]
    assert lines, "no log output"
    assert all(json.loads(line) for line in lines if line.startswith("{"))
    assert any("granted" in line for line in lines)
    assert SECRET not in logs and SECRET[:8] not in logs
    assert grant["id"] not in logs


def test_auth_token_from_a_kubernetes_secret_volume(start_tm, tmp_path):  # noqa: F811
    # The kubelet mounts a Secret as token -> ..data/token, ..data -> ..<timestamp>/ (symlinks).
    stamp = tmp_path / "..2026_11_27_17_00_00.123"
    stamp.mkdir()
    (stamp / "token").write_text(SECRET)
    (tmp_path / "..data").symlink_to(stamp.name)
    (tmp_path / "token").symlink_to("..data/token")
    tm = start_tm(args=["--auth-token-file", str(tmp_path / "token")])
    good = Client(tm.port, headers={"Authorization": "Bearer " + SECRET})
    s, grant = good.lock(0)
    assert s == 200
    assert Client(tm.port).release(grant["id"])[0] == 401
    assert good.release(grant["id"])[0] == 200
