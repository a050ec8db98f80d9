"""tokenmgr HTTP API on the real binary: every route, parameter and error status."""
import json
import shutil
import subprocess
import time
import uuid

import pytest

import procs
from tokenmgr_util import (PREFIXES, UUID4, Client, metrics, parse_raw_response, raw_exchange,
                           start_tm, status, tm, wait_waiters)  # noqa: F401 (fixtures)

JSON_TYPE = "application/json"


# ---------------------------------------------------------------------------------------------
# lock / release / renew / status, under both prefixes


@pytest.mark.parametrize("prefix", PREFIXES)
def test_lock_grants_uuid_token_and_default_ttl(start_tm, prefix):
    t = start_tm(args=["--lock-duration", "7"])
    c = Client(t.port)
    s, headers, body = c.call("GET", f"{prefix}/lock/0")
    assert s == 200, body
    assert headers["content-type"].startswith(JSON_TYPE)
    g = json.loads(body)
    assert set(g) == {"id", "token", "ttl", "expires_in_ms"}
    assert UUID4.match(g["id"]), g["id"]
    assert isinstance(g["token"], int) and g["token"] > 0
    assert g["ttl"] == 7
    assert 6000 < g["expires_in_ms"] <= 7000


@pytest.mark.parametrize("prefix", PREFIXES)
def test_lock_ttl_and_holder_query_show_in_status(tm, prefix):
    c = Client(tm.port)
    s, g = c.lock(0, prefix=prefix, ttl=3, holder="node-1.example_a:b")
    assert s == 200, g
    assert g["ttl"] == 3
    st = c.status(prefix)
    assert st["held"] is True
    assert st["holder"] == "node-1.example_a:b"
    assert st["token"] == g["token"] == st["last_token"]
    assert st["ttl"] == 3
    assert 0 < st["expires_in_ms"] <= 3000
    assert st["waiters"] == 0
    assert st["acquired_at"].endswith("Z")


def test_status_when_free(tm):
    st = status(tm.port)
    assert st["held"] is False
    assert st["holder"] is None and st["token"] is None
    assert st["waiters"] == 0


def test_holder_defaults_to_client_address(tm):
    c = Client(tm.port)
    assert c.lock(0)[0] == 200
    assert c.status()["holder"] == "127.0.0.1"


@pytest.mark.parametrize("prefix", PREFIXES)
def test_release_returns_seed_body_and_frees(tm, prefix):
    c = Client(tm.port)
    _, g = c.lock(0, prefix=prefix)
    s, headers, body = c.release(g["id"], prefix=prefix)
    assert s == 200
    assert body == '"Released"' and len(body.encode()) == 10
    assert headers["content-type"].startswith(JSON_TYPE)
    assert c.status(prefix)["held"] is False


@pytest.mark.parametrize("prefix", PREFIXES)
def test_release_twice_is_404(tm, prefix):
    c = Client(tm.port)
    _, g = c.lock(0, prefix=prefix)
    assert c.release(g["id"], prefix=prefix)[0] == 200
    s, headers, body = c.release(g["id"], prefix=prefix)
    assert s == 404
    assert headers["content-type"].startswith(JSON_TYPE)
    assert "Error" in json.loads(body)


def test_release_with_wrong_ids_never_releases(tm):
    c = Client(tm.port)
    _, g = c.lock(0, ttl=30)
    lid = g["id"]
    flipped = lid[:-1] + ("0" if lid[-1] != "0" else "1")
    for wrong in [str(uuid.uuid4()), flipped, lid[:-1], lid + "0", lid.upper(), "x"]:
        s, _, body = c.release(wrong)
        assert s == 404, (wrong, body)
        assert "Error" in json.loads(body)
        st = c.status()
        assert st["held"] and st["token"] == g["token"], wrong
    assert c.release(lid)[0] == 200


def test_release_without_id_is_404(tm):
    for prefix in PREFIXES:
        s, _, body = procs.request(tm.port, "POST", f"{prefix}/release/")
        assert s == 404
        assert "Error" in json.loads(body)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_renew_extends_lease(tm, prefix):
    c = Client(tm.port)
    _, g = c.lock(0, prefix=prefix, ttl=2)
    s, r = c.json("POST", f"{prefix}/renew/{g['id']}?ttl=30")
    assert s == 200, r
    assert r["id"] == g["id"] and r["token"] == g["token"]
    assert r["ttl"] == 30 and r["expires_in_ms"] == 30000
    st = c.status(prefix)
    assert st["ttl"] == 30 and 28000 < st["expires_in_ms"] <= 30000


def test_renew_wrong_or_released_id_is_404(tm):
    c = Client(tm.port)
    _, g = c.lock(0)
    s, body = c.json("POST", f"/api/token/renew/{uuid.uuid4()}?ttl=5")
    assert s == 404 and "Error" in body
    assert c.release(g["id"])[0] == 200
    s, body = c.json("POST", f"/api/token/renew/{g['id']}?ttl=5")
    assert s == 404 and "Error" in body
    assert c.status()["held"] is False


@pytest.mark.parametrize("ttl", ["abc", "-1", "0", "1.5", "", "61", "1e3", "99999999999999999999"])
def test_renew_bad_ttl_is_400(start_tm, ttl):
    t = start_tm(args=["--max-ttl", "60"])
    c = Client(t.port)
    _, g = c.lock(0, ttl=5)
    s, body = c.json("POST", f"/api/token/renew/{g['id']}?ttl={ttl}")
    assert s == 400, body
    assert "Error" in body
    assert c.status()["ttl"] == 5


def test_status_and_other_reads_never_contain_the_id(tm):
    c = Client(tm.port)
    _, g = c.lock(0, holder="n1")
    for path in ["/api/token/status", "/api/tokenmgr/status", "/api/stats", "/metrics",
                 "/healthz", "/readyz"]:
        s, _, body = c.call("GET", path)
        assert s == 200, path
        assert g["id"] not in body, path
        assert g["id"][:8] not in body, path


def test_busy_lock_is_409_naming_holder_and_time_left(tm):
    a, b = Client(tm.port), Client(tm.port)
    assert a.lock(0, holder="node-a", ttl=20)[0] == 200
    s, body = b.lock(0, holder="node-b")
    assert s == 409
    assert "node-a" in body["Error"]
    assert "ms" in body["Error"] and any(ch.isdigit() for ch in body["Error"])


def test_waiter_that_times_out_gets_409_and_is_never_granted(tm):
    a, b = Client(tm.port), Client(tm.port)
    _, g = a.lock(0, holder="node-a", ttl=20)
    s, body = b.lock(1, holder="node-b")
    assert s == 409 and "node-a" in body["Error"]
    assert status(tm.port)["waiters"] == 0
    assert a.release(g["id"])[0] == 200
    st = status(tm.port)
    assert st["held"] is False, st  # node-b gave up; it must not have been handed the lock


# ---------------------------------------------------------------------------------------------
# bad parameters -> 400


@pytest.mark.parametrize("timeout", ["abc", "-1", "1.5", "0x10", "%2D1", "6", "1e2",
                                     "99999999999999999999999"])
def test_lock_bad_timeout_is_400(start_tm, timeout):
    t = start_tm(args=["--max-wait", "5"])
    s, headers, body = procs.request(t.port, "GET", f"/api/token/lock/{timeout}")
    assert s == 400, body
    assert headers["content-type"].startswith(JSON_TYPE)
    assert "Error" in json.loads(body)
    assert status(t.port)["held"] is False


@pytest.mark.parametrize("ttl", ["abc", "-1", "0", "1.5", "", "61", "99999999999999999999999"])
def test_lock_bad_ttl_is_400(start_tm, ttl):
    t = start_tm(args=["--max-ttl", "60"])
    s, _, body = procs.request(t.port, "GET", f"/api/token/lock/0?ttl={ttl}")
    assert s == 400, body
    assert "Error" in json.loads(body)
    assert status(t.port)["held"] is False


@pytest.mark.parametrize("holder", ["%3Cscript%3E", "a%20b", "a/b", "a%2Fb", "a%00b", "%C3%A9",
                                    "a%22b", "a%0Ab", "", "x" * 254, "a;b", "%zz"])
def test_lock_bad_holder_is_400(tm, holder):
    s, _, body = procs.request(tm.port, "GET", f"/api/token/lock/0?holder={holder}")
    assert s == 400, body
    assert "Error" in json.loads(body)
    assert status(tm.port)["held"] is False


def test_holder_of_max_length_is_accepted(tm):
    s, _, body = procs.request(tm.port, "GET", "/api/token/lock/0?holder=" + "x" * 253)
    assert s == 200, body


def test_repeated_query_parameter_is_400(tm):
    s, _, body = procs.request(tm.port, "GET", "/api/token/lock/0?ttl=5&ttl=6")
    assert s == 400, body


# ---------------------------------------------------------------------------------------------
# stats, health, metrics


def test_stats_is_keyed_by_route_and_does_not_grow(tm):
    c = Client(tm.port)

    def burst(start, n):
        for i in range(start, start + n):
            c.call("GET", f"/api/stats?i={i}")
            c.call("GET", f"/api/token/status?nonce={i}")
            c.call("GET", f"/api/tokenmgr/lock/0?holder=h{i}&ttl=1&x={i}")
            c.call("POST", f"/api/token/release/{uuid.uuid4()}")
            c.call("GET", f"/no/such/path/{i}?q={i}")
            c.call("GET", f"/healthz?{i}")

    burst(0, 20)
    s, first = c.json("GET", "/api/stats")
    assert s == 200
    burst(20, 40)
    s, second = c.json("GET", "/api/stats")
    assert set(first) == set(second), set(second) ^ set(first)
    for key in second:
        assert "?" not in key and "h1" not in key, key
    assert second["/api/token/status"] == 60
    assert second["/api/token/release/:id"] == 60
    assert second["/api/tokenmgr/lock/:timeout"] == 60
    assert second["/healthz"] == 60
    assert second["/api/stats"] == 62  # 60 + the two reads, each counting itself (as the seed)
    assert len(second) <= 8, second


def test_stats_counts_itself_like_the_seed(tm):
    s, body = procs.get_json(tm.port, "/api/stats")
    assert s == 200 and body == {"/api/stats": 1}


def test_healthz_and_readyz(tm):
    for path in ["/healthz", "/readyz"]:
        s, headers, body = procs.request(tm.port, "GET", path)
        assert s == 200, path
        assert headers["content-type"].startswith(JSON_TYPE)
        json.loads(body)


def _busy_activity(port):
    a, b = Client(port), Client(port)
    _, g = a.lock(0, holder="m1", ttl=10)
    b.lock(0, holder="m2")  # 409
    procs.request(port, "GET", "/nope")
    procs.request(port, "GET", "/api/token/lock/abc")
    a.json("POST", f"/api/token/renew/{g['id']}?ttl=10")
    a.release(g["id"])
    a.release(g["id"])  # 404


def test_metrics_names_and_values(tm):
    _busy_activity(tm.port)
    m = metrics(tm.port)
    assert m["tokenmgr_lock_grants_total"] == 1
    assert m["tokenmgr_lock_releases_total"] == 1
    assert m["tokenmgr_lock_renewals_total"] == 1
    assert m["tokenmgr_lock_rejected_total"] == 1
    assert m["tokenmgr_lock_waiters"] == 0
    assert m["tokenmgr_lock_held"] == 0
    assert m["tokenmgr_lock_wait_seconds_count"] == 0
    assert m["tokenmgr_lock_holder_lease_age_seconds"] == 0
    assert m['tokenmgr_http_requests_total{route="/api/token/lock/:timeout",code="200"}'] == 1
    assert m['tokenmgr_http_requests_total{route="/api/token/lock/:timeout",code="409"}'] == 1
    assert m['tokenmgr_http_requests_total{route="/api/token/lock/:timeout",code="400"}'] == 1
    assert m['tokenmgr_http_requests_total{route="/api/token/release/:id",code="404"}'] == 1
    assert "tokenmgr_lock_expiries_total" in m
    s, headers, _ = procs.request(tm.port, "GET", "/metrics")
    assert headers["content-type"].startswith("text/plain")


def test_metrics_print_numbers_in_shortest_form(tm):
    c = Client(tm.port)
    _, g = c.lock(0, holder="m", ttl=10)
    c.release(g["id"])
    _, _, body = c.call("GET", "/metrics")
    assert 'tokenmgr_lock_wait_seconds_bucket{le="0.1"} ' in body, body
    assert 'tokenmgr_lock_wait_seconds_bucket{le="0.001"} ' in body, body
    assert "0000000000" not in body and "9999999999" not in body, body


def test_metrics_have_build_info_and_start_time(tm):
    m = metrics(tm.port)
    assert m['tokenmgr_build_info{version="1.0.0"}'] == 1, m
    assert 0 < time.time() - m["process_start_time_seconds"] < 600, m


def test_metrics_say_ready(tm):
    # What /readyz says, for alerting (BitfusionTokenmgrNotReady); the etcd tests cover 0.
    assert metrics(tm.port)["tokenmgr_ready"] == 1


def test_metrics_count_the_pool_by_state(start_tm, tmp_path):
    pool = tmp_path / "pool"
    procs.make_pool(str(pool), 3)
    t = start_tm(args=["--pool-dir", str(pool)])
    m = metrics(t.port)
    assert m['tokenmgr_pool_licenses{state="free"}'] == 3, m
    assert m['tokenmgr_pool_licenses{state="held"}'] == 0, m
    _, licenses = procs.get_json(t.port, "/api/licenses")
    assert licenses["totals"]["free"] == 3  # the same scan


def test_metrics_have_no_pool_series_without_a_pool(tm):
    assert not [k for k in metrics(tm.port) if k.startswith("tokenmgr_pool_")]


def test_metrics_pass_promtool(tm):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool not installed (Debian package prometheus; CI installs it)")
    _busy_activity(tm.port)
    c = Client(tm.port)
    _, g = c.lock(0, holder="m3", ttl=10)  # held, so the lease-age gauge is non-zero
    s, _, body = c.call("GET", "/metrics")
    assert s == 200
    p = subprocess.run([promtool, "check", "metrics"], input=body.encode(), capture_output=True,
                       timeout=30)
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode() + body


# ---------------------------------------------------------------------------------------------
# unknown paths, wrong methods


@pytest.mark.parametrize("path", ["/nope", "/api/token/", "/api/token/lock",
                                  "/api/token/lock/5/extra", "/api/tokenmgr/nope",
                                  "/api/token/status/x", "/api/reminders", "/html/tmpl/edit",
                                  "/api/token/release"])
def test_unknown_path_is_404_json(tm, path):
    s, headers, body = procs.request(tm.port, "GET", path)
    assert s == 404, path
    assert headers["content-type"].startswith(JSON_TYPE)
    assert "Error" in json.loads(body)


@pytest.mark.parametrize("method,path,allow", [
    ("POST", "/api/token/lock/0", "GET"),
    ("DELETE", "/api/tokenmgr/lock/0", "GET"),
    ("GET", "/api/token/release/abc", "POST"),
    ("PUT", "/api/tokenmgr/release/abc", "POST"),
    ("GET", "/api/token/renew/abc", "POST"),
    ("POST", "/api/token/status", "GET, HEAD"),
    ("POST", "/api/stats", "GET, HEAD"),
    ("POST", "/healthz", "GET, HEAD"),
    ("PUT", "/readyz", "GET, HEAD"),
    ("DELETE", "/metrics", "GET, HEAD"),
    ("HEAD", "/api/token/lock/0", "GET"),  # HEAD never takes the lock
])
def test_wrong_method_is_405_with_allow(tm, method, path, allow):
    s, headers, body = procs.request(tm.port, method, path)
    assert s == 405, (method, path)
    assert headers.get("allow") == allow
    assert method == "HEAD" or "Error" in json.loads(body)
    assert status(tm.port)["held"] is False


@pytest.mark.parametrize("path", ["/healthz", "/api/token/status", "/api/stats", "/metrics",
                                  "/html/tmpl/index", "/api/licenses"])
def test_head_answers_like_get_without_a_body(tm, path):
    s, get_headers, get_body = procs.request(tm.port, "GET", path)
    assert s == 200
    raw = raw_exchange(tm.port, f"HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                       .encode())
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert rest == b"", raw
    status_line, *lines = head.decode().split("\r\n")
    assert status_line.startswith("HTTP/1.1 200"), raw
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
    assert headers["content-type"] == get_headers["content-type"]
    if path not in ("/metrics", "/html/tmpl/index"):  # these count the requests they saw
        assert headers["content-length"] == get_headers["content-length"] == str(len(get_body))
    else:
        assert int(headers["content-length"]) > 0


def test_unknown_query_parameter_is_400_naming_it(tm):
    s, body = Client(tm.port).json("GET", "/api/token/lock/0?TTL=300")
    assert s == 400, body
    assert "'TTL'" in body["Error"] and "ttl" in body["Error"], body
    assert status(tm.port)["held"] is False
    s, body = Client(tm.port).json("POST", "/api/token/release/x?force=1")
    assert s == 400 and "'force'" in body["Error"], body


def test_percent_encoded_path_segment_is_decoded(tm):
    s, g = Client(tm.port).json("GET", "/api/token/lock/%30?holder=enc")
    assert s == 200, g
    s, body = Client(tm.port).json("POST", f"/api/token/release/{g['id'].replace('-', '%2D')}")
    assert s == 200, body


def test_encoded_slash_in_path_is_400(tm):
    s, _, body = procs.request(tm.port, "POST", "/api/token/release/a%2Fb")
    assert s == 400, body
    assert "%2F" in json.loads(body)["Error"]


def test_absolute_form_target_is_served(tm):
    raw = raw_exchange(tm.port, b"GET http://tokenmgr.example:8080/api/token/status HTTP/1.1\r\n"
                                b"Host: tokenmgr.example:8080\r\nConnection: close\r\n\r\n")
    s, _, body = parse_raw_response(raw)
    assert s == 200, raw
    assert json.loads(body)["held"] is False


# ---------------------------------------------------------------------------------------------
# hostile requests


def test_oversized_headers_get_431_or_close(tm):
    req = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    out = raw_exchange(tm.port, req)
    if out:
        assert parse_raw_response(out)[0] == 431
    assert procs.request(tm.port, "GET", "/healthz")[0] == 200


def test_many_headers_get_431_or_close(tm):
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-H%d: v\r\n" % i for i in range(2000)) + b"\r\n"
    out = raw_exchange(tm.port, req)
    if out:
        assert parse_raw_response(out)[0] == 431
    assert procs.request(tm.port, "GET", "/healthz")[0] == 200


def test_request_limits_are_configurable(start_tm):
    t = start_tm(args=["--max-header-count", "8", "--max-header-bytes", "1024",
                       "--max-body-bytes", "16"])

    def ask(extra_headers=b"", body=b""):
        req = (b"POST /api/token/release/abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
               extra_headers +
               b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return parse_raw_response(raw_exchange(t.port, req))

    # At the limits: answered (404: no such lock). One past each: refused with a clear 4xx.
    five = b"".join(b"X-H%d: v\r\n" % i for i in range(5))  # + 3 fields of ask() = 8
    assert ask(five, b"a" * 16)[0] == 404
    code, _, body = ask(five + b"X-Extra: v\r\n")
    assert code == 431 and b"too many request header fields" in body
    assert ask(b"X-Big: " + b"a" * 2000 + b"\r\n")[0] == 431
    assert ask(body=b"a" * 17)[0] == 413
    assert procs.request(t.port, "GET", "/healthz")[0] == 200
    assert metrics(t.port)["tokenmgr_http_bad_requests_total"] >= 3


def test_overlong_url_gets_4xx_or_close(tm):
    req = b"GET /api/token/lock/0?holder=" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    out = raw_exchange(tm.port, req)
    if out:
        assert parse_raw_response(out)[0] in (400, 414, 431), out[:200]
    assert status(tm.port)["held"] is False


def test_oversized_body_is_413(tm):
    req = (b"POST /api/token/release/abc HTTP/1.1\r\nHost: x\r\n"
           b"Content-Length: 10000000\r\n\r\n" + b"a" * 1000)
    status_code, _, body = parse_raw_response(raw_exchange(tm.port, req))
    assert status_code == 413
    assert "Error" in json.loads(body)
    assert procs.request(tm.port, "GET", "/healthz")[0] == 200


def test_oversized_chunked_body_is_413_or_close(tm):
    chunk = b"a" * 8192
    body = b"".join(b"2000\r\n" + chunk + b"\r\n" for _ in range(10)) + b"0\r\n\r\n"
    req = (b"POST /api/token/release/abc HTTP/1.1\r\nHost: x\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" + body)
    out = raw_exchange(tm.port, req)
    if out:
        assert parse_raw_response(out)[0] == 413
    assert procs.request(tm.port, "GET", "/healthz")[0] == 200


@pytest.mark.parametrize("line", [b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                                  b"\x00\x01\x02 / HTTP/1.1\r\n\r\n",
                                  b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n",
                                  b"GET /healthz HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                                  b"G\xffT / HTTP/1.1\r\n\r\n"])
def test_malformed_request_is_400_or_close(tm, line):
    out = raw_exchange(tm.port, line)
    if out:
        assert parse_raw_response(out)[0] == 400, out
    assert procs.request(tm.port, "GET", "/healthz")[0] == 200


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "cross-site"},
                                     {"Origin": "http://evil.example"},
                                     {"Origin": "null"}])
def test_cross_site_lock_and_release_are_403(tm, headers):
    c = Client(tm.port)
    s, body = c.json("GET", "/api/token/lock/0", headers=headers)
    assert s == 403, body
    assert c.status()["held"] is False
    _, g = c.lock(0)
    s, body = c.json("POST", f"/api/token/release/{g['id']}", headers=headers)
    assert s == 403, body
    assert c.status()["held"] is True
    s, body = c.json("POST", f"/api/token/renew/{g['id']}", headers=headers)
    assert s == 403, body


def test_same_origin_browser_request_is_allowed(tm):
    c = Client(tm.port)
    s, body = c.json("GET", "/api/token/lock/0",
                     headers={"Origin": f"http://127.0.0.1:{tm.port}",
                              "Sec-Fetch-Site": "same-origin"})
    assert s == 200, body


# ---------------------------------------------------------------------------------------------
# bearer-token auth

SECRET = "s3cr3t-Token_value.42"


@pytest.fixture
def auth_tm(start_tm, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(SECRET + "\n")
    return start_tm(args=["--auth-token-file", str(token_file)])


@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Bearer " + SECRET + "x",
                                  "Bearer " + SECRET[:-1], "bearer " + SECRET.lower(), SECRET,
                                  "Basic " + SECRET, "Bearer" + SECRET])
def test_auth_required_for_lock_release_renew(auth_tm, auth):
    good = Client(auth_tm.port, headers={"Authorization": "Bearer " + SECRET})
    bad = Client(auth_tm.port, headers={"Authorization": auth} if auth else {})
    for prefix in PREFIXES:
        s, headers, body = bad.call("GET", f"{prefix}/lock/0")
        assert s == 401, (prefix, body)
        assert headers.get("www-authenticate", "").startswith("Bearer")
        assert "Error" in json.loads(body)
        assert status(auth_tm.port)["held"] is False
    s, g = good.lock(0)
    assert s == 200, g
    assert bad.release(g["id"])[0] == 401
    assert bad.call("POST", f"/api/token/renew/{g['id']}")[0] == 401
    assert status(auth_tm.port)["held"] is True
    assert good.call("POST", f"/api/token/renew/{g['id']}?ttl=5")[0] == 200
    assert good.release(g["id"])[0] == 200


@pytest.mark.parametrize("auth", ["bearer " + SECRET, "BEARER " + SECRET, "Bearer  " + SECRET])
def test_auth_scheme_is_case_insensitive(auth_tm, auth):
    c = Client(auth_tm.port, headers={"Authorization": auth})
    s, g = c.lock(0)
    assert s == 200, g
    assert c.release(g["id"])[0] == 200


def test_refused_requests_are_logged_at_most_once_per_10_s(auth_tm):
    bad = Client(auth_tm.port, headers={"Authorization": "Bearer wrong"})
    for _ in range(20):
        assert bad.call("GET", "/api/token/lock/0")[0] == 401
    assert procs.request(auth_tm.port, "POST", "/api/token/release/x")[0] == 401
    assert auth_tm.stop() == 0
    lines = [ln for ln in auth_tm.logs().splitlines() if ": 401," in ln]  # not a port or a token
    assert len(lines) == 1, lines  # 21 refusals within 10 s: one line
    assert "refused GET /api/token/lock/" in lines[0] and "127.0.0.1" in lines[0], lines
    assert "wrong bearer token" in lines[0], lines


def test_auth_leaves_read_only_routes_open(auth_tm):
    for path in ["/api/token/status", "/api/tokenmgr/status", "/api/stats", "/healthz", "/readyz",
                 "/metrics"]:
        assert procs.request(auth_tm.port, "GET", path)[0] == 200, path


def test_auth_token_and_lock_ids_never_logged(auth_tm):
    good = Client(auth_tm.port, headers={"Authorization": "Bearer " + SECRET})
    bad = Client(auth_tm.port, headers={"Authorization": "Bearer " + SECRET + "x"})
    ids = []
    for _ in range(3):
        _, g = good.lock(0)
        ids.append(g["id"])
        bad.release(g["id"])
        good.release(g["id"])
    good.release(str(uuid.uuid4()))
    assert auth_tm.stop() == 0
    logs = auth_tm.logs()
    assert "granted" in logs  # the log is not simply empty
    assert SECRET not in logs and SECRET[:8] not in logs
    for i in ids:
        assert i not in logs and i[:13] not in logs


def test_auth_token_file_from_env(start_tm, tmp_path):
    token_file = tmp_path / "tok"
    token_file.write_text(SECRET)
    t = start_tm(env={"AUTH_TOKEN_FILE": str(token_file)})
    assert procs.request(t.port, "GET", "/api/token/lock/0")[0] == 401
    assert procs.request(t.port, "GET", "/api/token/lock/0",
                         headers={"Authorization": "Bearer " + SECRET})[0] == 200
