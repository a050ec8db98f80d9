"""A network lab for partition tests: one network namespace per node, joined by a bridge that
lives in a namespace of its own, addresses 10.213.0.x that exist only inside these namespaces.
A nemesis cuts links with `iptables -j DROP` inside a node's namespace and heals by flushing.

Nothing here touches the host's own interfaces or firewall: every veth is created inside the
bridge namespace with its peer moved straight into the node's namespace, and every iptables call
runs under `ip netns exec`. Processes are started with `ip netns exec` (which execs, so the PID
is the program's) and stopped by PID. Lab.close() (also registered with atexit) kills them,
then anything else still inside our namespaces, then deletes the namespaces; a new Lab first
removes the leftovers of labs whose creating process is gone (names `lmpart<pid>-<node>`).

    lab = netlab.Lab(workdir)
    lab.add_node("e1"); lab.add_node("t1")
    lab.spawn("e1", ["etcd", ...], log_path)
    lab.cut(["t1", "e1"], ["e2", "e3", "t2"]); ...; lab.heal()
    lab.close()
"""
import atexit
import os
import shutil
import signal
import subprocess
import sys
import time

PREFIX = "lmpart"
SUBNET = "10.213.0"
_BRIDGE = "br"
_HTTP_ONE = """
import sys, urllib.request, urllib.error
m, url, t, body = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
data = body.encode() if m == "POST" else None
try:
    with urllib.request.urlopen(urllib.request.Request(url, method=m, data=data), timeout=t) as r:
        print(r.status); print(r.read().decode(errors="replace"))
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode(errors="replace"))
except Exception as e:
    print(0); print(type(e).__name__)
"""


def unavailable_reason():
    """Why this lab cannot run here (None if it can): needs root, `ip netns` and iptables."""
    if os.geteuid() != 0:
        return "partition tests need root (network namespaces, iptables)"
    if not shutil.which("ip"):
        return "`ip` (iproute2) not installed"
    if not shutil.which("iptables") or not shutil.which("iptables-restore"):
        return "iptables not installed (Debian package iptables)"
    probe = f"{PREFIX}{os.getpid()}-probe"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        return f"`ip netns add` does not work here: {r.stderr.strip()}"
    try:
        r = subprocess.run(["ip", "netns", "exec", probe, "iptables", "-w", "-L", "INPUT", "-n"],
                           capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            return f"iptables does not work inside a namespace: {r.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=20)
    return None


def _run(cmd, check=True, timeout=20):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def _our_namespaces():
    r = _run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in r.stdout.splitlines()
            if line.startswith(PREFIX)]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _kill_namespace(ns):
    """SIGKILLs (by PID) every process inside namespace `ns`, then deletes it."""
    r = _run(["ip", "netns", "pids", ns], check=False)
    for pid in (int(p) for p in r.stdout.split() if p.isdigit()):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _run(["ip", "netns", "del", ns], check=False)


def cleanup_leftovers():
    """Deletes the namespaces (and kills their processes) of labs whose creator has exited."""
    for ns in _our_namespaces():
        owner = ns[len(PREFIX):].split("-", 1)[0]
        if owner.isdigit() and int(owner) != os.getpid() and not _pid_alive(int(owner)):
            _kill_namespace(ns)


class Lab:
    def __init__(self, workdir):
        cleanup_leftovers()
        self.workdir = workdir
        self.tag = f"{PREFIX}{os.getpid()}"
        self.nodes = {}  # name -> address
        self.procs = []  # (name, Popen, log file)
        self.log_of = {}  # node -> log of the last process spawned there
        self.closed = False
        atexit.register(self.close)
        self._ns(_BRIDGE, create=True)
        _run(["ip", "-n", self.ns(_BRIDGE), "link", "add", "br0", "type", "bridge"])
        _run(["ip", "-n", self.ns(_BRIDGE), "link", "set", "br0", "up"])

    def ns(self, node):
        return f"{self.tag}-{node}"

    def _ns(self, node, create=False):
        if create:
            _run(["ip", "netns", "add", self.ns(node)])
            _run(["ip", "-n", self.ns(node), "link", "set", "lo", "up"])
        return self.ns(node)

    def add_node(self, name):
        """A namespace `name` with eth0 on the bridge; returns its address."""
        assert name not in self.nodes and name != _BRIDGE and len(self.nodes) < 200
        addr = f"{SUBNET}.{len(self.nodes) + 10}"
        ns = self._ns(name, create=True)
        br = self.ns(_BRIDGE)
        veth = f"v{len(self.nodes)}"
        _run(["ip", "-n", br, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
              "netns", ns])
        _run(["ip", "-n", br, "link", "set", veth, "master", "br0", "up"])
        _run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0"])
        _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        self.nodes[name] = addr
        return addr

    def spawn(self, node, cmd, log_path, env=None):
        """Starts `cmd` inside `node`'s namespace, output to `log_path`; returns the Popen."""
        log = open(log_path, "ab")
        self.log_of[node] = log_path
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(node)] + list(cmd), stdout=log,
                             stderr=subprocess.STDOUT, env=env)
        self.procs.append((node, p, log))
        return p

    def run(self, node, cmd, timeout=20):
        """Runs `cmd` to completion inside `node`; returns the CompletedProcess (text)."""
        return subprocess.run(["ip", "netns", "exec", self.ns(node)] + list(cmd),
                              capture_output=True, text=True, timeout=timeout)

    def http(self, node, method, url, body="", timeout=3):
        """One HTTP request from inside `node`: (status, body text); status 0 = no answer."""
        r = self.run(node, [sys.executable, "-c", _HTTP_ONE, method, url, str(timeout), body],
                     timeout=timeout + 10)
        status, _, body = r.stdout.partition("\n")
        return (int(status) if status.strip().isdigit() else 0), body

    def stop(self, proc, sig=signal.SIGKILL, timeout=10):
        if proc.poll() is None:
            os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        for _, p, log in self.procs:
            if p is proc:
                log.close()

    # The nemesis. Rules only ever DROP; heal() flushes every node's INPUT and OUTPUT chains.
    # A cut is applied as one iptables-restore per namespace, all namespaces at once, so that
    # it takes effect within a few ms as a real partition does (one iptables call per rule took
    # 0.4-1.0 s on a loaded box, with the cut half made meanwhile).
    def _apply(self, rules):
        """rules: node -> ["-A INPUT -s <addr> -j DROP", ...], applied together."""
        procs = []
        for node, lines in rules.items():
            script = "*filter\n" + "".join(line + "\n" for line in lines) + "COMMIT\n"
            p = subprocess.Popen(["ip", "netns", "exec", self.ns(node), "iptables-restore",
                                  "--noflush"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            procs.append((node, p, script))
        errors = []
        for node, p, script in procs:
            _, err = p.communicate(script, timeout=20)
            if p.returncode != 0:
                errors.append(f"{node}: {err.strip()}")
        if errors:
            raise RuntimeError("iptables-restore failed: " + "; ".join(errors))

    def _drops(self, rules, node, peer, both=True):
        rules.setdefault(node, []).append(f"-A INPUT -s {self.nodes[peer]} -j DROP")
        if both:
            rules[node].append(f"-A OUTPUT -d {self.nodes[peer]} -j DROP")

    def cut_oneway(self, src, dst):
        """Packets from `src` no longer reach `dst` (dst -> src still flows)."""
        rules = {}
        self._drops(rules, dst, src, both=False)
        self._apply(rules)

    def cut(self, side_a, side_b):
        """No packet between any node of `side_a` and any node of `side_b`, either way."""
        rules = {}
        for a in side_a:
            for b in side_b:
                self._drops(rules, a, b)
                self._drops(rules, b, a)
        self._apply(rules)

    def isolate(self, node):
        self.cut([node], [n for n in self.nodes if n != node])

    def heal(self):
        self._apply({node: ["-F INPUT", "-F OUTPUT"] for node in self.nodes})

    def close(self):
        """Kills every process by PID, then whatever else runs in our namespaces; deletes them.
        Safe to call twice (atexit calls it again)."""
        if self.closed:
            return
        self.closed = True
        for _, p, log in self.procs:
            try:
                if p.poll() is None:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            if not log.closed:
                log.close()
        for node in list(self.nodes) + [_BRIDGE]:
            _kill_namespace(self.ns(node))
        deadline = time.monotonic() + 10
        while any(ns.startswith(self.tag + "-") for ns in _our_namespaces()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"namespaces {self.tag}-* still there after close()")
            for ns in _our_namespaces():
                if ns.startswith(self.tag + "-"):
                    _kill_namespace(ns)
            time.sleep(0.1)
