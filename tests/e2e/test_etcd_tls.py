"""STORE=etcd over TLS (issue 6): tokenmgr replicas talk https to a real etcd that demands client
certificates (--client-cert-auth), with a throw-away PKI made by the openssl CLI in the test's
temp dir. Wrong CAs, foreign client certificates, names that do not match and keys that do not
match are refused with a message saying so.
"""
import base64
import json
import os

import pytest

import procs
from etcd_util import EtcdCluster, etcd_env, kill_all, lock, make_pki, wait_ready


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory, pki):
    cluster = EtcdCluster(str(tmp_path_factory.mktemp("etcd-tls")), size=1, tls=pki).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def start(tmp_path):
    """start(endpoints, ca, cert, key, ...) -> a started tokenmgr (port file written)."""
    started = []

    def run(cluster, ca=None, cert=None, key=None, endpoints=None, prefix=None, expect_fail=False,
            protocol=None):
        wd = str(tmp_path / f"tm{len(started)}")
        os.makedirs(wd)
        env = etcd_env(cluster, prefix)
        if protocol:
            env["ETCD_PROTOCOL"] = protocol
        if endpoints:
            env["ETCD_ENDPOINTS"] = endpoints
        for var, path in (("ETCD_CACERT", ca), ("ETCD_CERT", cert), ("ETCD_KEY", key)):
            if path:
                env[var] = path
        t = procs.Tokenmgr(workdir=wd, env=env, state_file=False)
        started.append(t)
        if expect_fail:
            rc = t.start(expect_fail=True)
            t.close_log()
            return rc, t.logs()
        return t.start()

    yield run
    kill_all(started)


# gRPC over TLS needs ALPN "h2" (etcd serves gRPC only to clients that offer it); the JSON
# gateway is plain HTTP/1.1 over TLS. One replica of each, sharing the lock.
@pytest.mark.parametrize("protocols", [("grpc", "grpc"), ("json", "grpc")])
def test_lock_renew_release_over_tls_with_client_certificates(tls_etcd, pki, start, protocols):
    prefix = f"/tokenmgr-tls/{protocols[0]}/"
    a, b = (start(tls_etcd, pki.ca, pki.client_cert, pki.client_key, prefix=prefix, protocol=p)
            for p in protocols)
    assert tls_etcd.endpoints.startswith("https://127.0.0.1:")
    wait_ready(a.port)
    wait_ready(b.port)
    s, g = lock(a.port, holder="tls-node", ttl=5)
    assert s == 200, g
    s, _, body = procs.request(b.port, "POST", f"/api/token/renew/{g['id']}?ttl=60")
    assert s == 200 and json.loads(body)["token"] == g["token"], body
    # b learnt of a's grant through its watch stream, which runs over TLS too.
    st = procs.wait_for(lambda: (lambda st: st if st["held"] else None)(
        procs.get_json(b.port, "/api/token/status")[1]), timeout=5, what="status on b")
    assert st["holder"] == "tls-node"
    s, busy = lock(b.port, 0)
    assert s == 409
    assert procs.request(b.port, "POST", f"/api/token/release/{g['id']}")[0] == 200
    s, g2 = lock(b.port, 0)
    assert s == 200 and g2["token"] > g["token"]
    # And the grant key really is in this etcd, under the prefix (read with the test's client
    # cert): one key in [<prefix>lock/, <prefix>lock0).
    kv = tls_etcd.members[0].call("/v3/kv/range", {"key": b64(prefix + "lock/"),
                                                   "range_end": b64(prefix + "lock0")})
    assert kv and kv.get("count") == "1", kv


def b64(text):
    return base64.b64encode(text.encode()).decode()


def _refused(t, needles):
    """Not ready, and lock answers 503 with an error naming etcd and every needle."""
    def error():
        s, body = lock(t.port, 0)
        assert s == 503, body
        return body["Error"] if all(n in body["Error"] for n in needles) else None
    message = procs.wait_for(error, timeout=10, interval=0.1, what=f"503 naming {needles}")
    assert "etcd" in message
    wait_ready(t.port, ready=False)
    return message


@pytest.mark.parametrize("which", ["rogue", "none"])
def test_client_certificate_not_signed_by_the_ca_or_none_is_rejected(tls_etcd, pki, start, which):
    cert, key = (pki.rogue_cert, pki.rogue_key) if which == "rogue" else (None, None)
    t = start(tls_etcd, pki.ca, cert, key)
    _refused(t, ["TLS"])
    assert "etcd unavailable" in t.logs()


def test_server_certificate_from_another_ca_is_rejected(tls_etcd, pki, start):
    t = start(tls_etcd, pki.other_ca, pki.client_cert, pki.client_key)
    _refused(t, ["server certificate rejected", "unable to get local issuer certificate"])


def test_server_certificate_for_another_name_is_rejected(tls_etcd, pki, start):
    # The certificate names IP 127.0.0.1 only; dialling "localhost" must fail verification.
    port = tls_etcd.members[0].client_port
    t = start(tls_etcd, pki.ca, pki.client_cert, pki.client_key,
              endpoints=f"https://localhost:{port}")
    _refused(t, ["server certificate rejected", "hostname mismatch"])


def test_client_key_that_does_not_match_the_certificate_stops_start_up(tls_etcd, pki, start):
    rc, logs = start(tls_etcd, pki.ca, pki.client_cert, pki.rogue_key, expect_fail=True)
    assert rc == 1, logs
    assert "cannot start" in logs and pki.rogue_key in logs and "matching" in logs


def test_ca_file_that_is_not_pem_stops_start_up(tls_etcd, pki, start, tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    rc, logs = start(tls_etcd, str(bad), pki.client_cert, pki.client_key, expect_fail=True)
    assert rc == 2 and "ETCD_CACERT" in logs and "not a PEM file" in logs, logs


def test_plain_http_endpoint_to_a_tls_etcd_is_unavailable_not_a_grant(tls_etcd, start):
    port = tls_etcd.members[0].client_port
    t = start(tls_etcd, endpoints=f"http://127.0.0.1:{port}")
    _refused(t, [])
