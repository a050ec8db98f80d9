// holder_bench: how long N simultaneously started license holders take until all of them hold
// distinct licenses from a pool of N, against the lower bound N x one critical section (the
// time one holder keeps the tokenmgr mutex). Started by bench/holder_run.sh, which owns the
// tokenmgr; loopback only.
//
//   holder_bench mkpool --pool=DIR --n=N
//   holder_bench cs     --tm-port=P --pool=DIR --work=DIR --runs=R
//   holder_bench procs  --tm-port=P --pool=DIR --work=DIR --n=N --holder=BIN --settle-ms=S [--tm-pid=PID]
//   holder_bench sim    --tm-port=P --pool=DIR --work=DIR --n=N --settle-ms=S [--threads=T]
//   (procs and sim: --hosts=DIR puts the host dirs there instead of under --work;
//    --heartbeat-s=H sets the holders' heartbeat, default 1)
//
// cs:    R uncontended runs of the real holder::Agent (PosixFilesystem, HttpTokenmgrClient), one
//        after another, each a fresh node; the critical section is measured on the client side,
//        from the lock grant received to the release answered (it contains the candidate
//        re-check, the license read, the fsynced claim write and its read-back, and the release
//        round trip). After each run the claim is removed, so every run sees the same pool.
// procs: N real license-holder processes, each with its own host dir, all sharing the pool;
//        completion is polled on the host dirs (the install manifest appears); then every host
//        dir and every claim is checked for distinctness, and VmRSS of every holder is read.
//        With --tm-pid the start is a barrier: the tokenmgr is SIGSTOPped while the holders
//        start, and continued once all N first lock requests wait in its accept queue; time
//        counts from there (spawning and the wait are printed apart).
// sim:   N holder::Agent instances in this process, each with its own RealSleeper (settle
//        really sleeps) and host dir, stepped by T worker threads (default T = N: every
//        simulated holder queues for the mutex at once, like processes); each worker thread
//        talks to tokenmgr through an HttpTokenmgrClient of its own (PerThreadClients).
//        Start barrier: every agent first starts and chooses its candidates against a closed
//        gate in its client (timed apart); then the gate opens and time counts.
// Every mode prints human-readable lines and one "RESULT key=value ..." line for the script.
// Exit status: 0 when every holder holds a distinct license in time, 1 otherwise, 2 on usage.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/tokenmgr_client.h"
#include "common/clock.h"
#include "common/real_time.h"
#include "common/sleeper.h"
#include "holder/agent.h"
#include "license/fs.h"
#include "license/installer.h"
#include "license/layout.h"
#include "license/pool.h"

namespace {

using namespace lm;
using SteadyClock = std::chrono::steady_clock;
using Nanos = std::chrono::nanoseconds;

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "holder_bench: %s\n", msg.c_str());
  std::exit(2);
}

struct Args {
  std::string mode;
  std::map<std::string, std::string> kv;
  bool Has(const std::string& k) const { return kv.count(k) > 0; }
  std::string Get(const std::string& k, const std::string& def = "") const {
    auto it = kv.find(k);
    if (it != kv.end()) return it->second;
    if (def.empty()) Die("missing --" + k);
    return def;
  }
  long Int(const std::string& k, long def = -1) const {
    auto it = kv.find(k);
    if (it == kv.end()) {
      if (def < 0) Die("missing --" + k);
      return def;
    }
    return std::stol(it->second);
  }
};

Args ParseArgs(int argc, char** argv) {
  if (argc < 2) Die("usage: holder_bench mkpool|cs|procs|sim --key=value...");
  Args a;
  a.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    auto eq = s.find('=');
    if (s.rfind("--", 0) != 0 || eq == std::string::npos) Die("bad argument " + s);
    a.kv[s.substr(2, eq - 2)] = s.substr(eq + 1);
  }
  return a;
}

double Ms(Nanos d) { return std::chrono::duration<double, std::milli>(d).count(); }
double Us(Nanos d) { return std::chrono::duration<double, std::micro>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

double Mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / v.size();
}

void MkdirP(const std::string& path) {
  std::string cur;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty()) {
      if (cur.empty()) cur = "/";
      continue;
    }
    cur += (cur.empty() || cur.back() == '/' ? "" : "/") + part;
    if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) Die("mkdir " + cur + " failed");
  }
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  if (!f) Die("cannot write " + path);
}

std::string TokenmgrUrl(const Args& a) {
  return "http://127.0.0.1:" + a.Get("tm-port") + "/api/token";
}

// Wraps the real HTTP client and times the mutex as the holder sees it: from the grant's
// arrival to the release's answer. Used by one agent, from one thread at a time.
class TimingClient final : public client::TokenmgrClient {
 public:
  // `inner` serves the calls; `owned`, when set, is `inner` and lives as long as this client.
  explicit TimingClient(client::TokenmgrClient& inner,
                        std::unique_ptr<client::TokenmgrClient> owned = nullptr)
      : inner_(inner), owned_(std::move(owned)) {}
  StatusOr<client::LockGrant> Lock(std::chrono::seconds wait, std::chrono::seconds ttl,
                                   const std::string& holder) override {
    if (gate && !gate->load()) {
      // The start barrier of `sim`: answered like a long poll that ended without the mutex,
      // so the agent keeps its candidates and asks again at once after the gate opens.
      ++gated;
      return FailedPrecondition("bench: start gate closed");
    }
    auto g = inner_.Lock(wait, ttl, holder);
    if (g.ok()) {
      ++grants;
      granted_at_ = SteadyClock::now();
    } else if (g.status().code() == StatusCode::kFailedPrecondition) {
      ++wait_timeouts;
    } else {
      ++errors;
    }
    return g;
  }
  StatusOr<console::Directives> Report(const std::string& node, const console::AgentReport& r,
                                       std::chrono::milliseconds timeout) override {
    return inner_.Report(node, r, timeout);
  }
  Status Release(const std::string& id) override {
    auto asked = SteadyClock::now();
    Status s = inner_.Release(id);
    auto answered = SteadyClock::now();
    releasing.push_back(answered - asked);
    if (granted_at_) held.push_back(answered - *granted_at_);
    granted_at_.reset();
    if (!s.ok()) ++errors;
    return s;
  }
  void Abort() override { inner_.Abort(); }

  std::vector<Nanos> held;       // one per grant: from the grant's answer to the release's
  std::vector<Nanos> releasing;  // one per release: the call alone (held's last part)
  uint64_t grants = 0, wait_timeouts = 0, errors = 0;
  const std::atomic<bool>* gate = nullptr;  // while false, Lock answers "not granted" at once
  uint64_t gated = 0;

 private:
  client::TokenmgrClient& inner_;
  std::unique_ptr<client::TokenmgrClient> owned_;
  std::optional<SteadyClock::time_point> granted_at_;
};

std::unique_ptr<client::HttpTokenmgrClient> MakeHttpClient(const Args& a) {
  auto c = client::HttpTokenmgrClient::Create(TokenmgrUrl(a), std::nullopt);
  if (!c.ok()) Die(c.status().message());
  return std::move(*c);
}

std::unique_ptr<TimingClient> MakeClient(const Args& a) {
  auto http = MakeHttpClient(a);
  client::TokenmgrClient& inner = *http;
  return std::make_unique<TimingClient>(inner, std::move(http));
}

// The simulated agents' way to tokenmgr: one HttpTokenmgrClient per worker thread, made on the
// thread's first call, whichever agent the thread is stepping. An HttpTokenmgrClient owns an
// io_context (epoll, eventfd and timerfd once used) besides its connection: one client per agent
// took 4 descriptors each, and 5,000 agents hit this sandbox's hard limit of 20,000 open files
// ("epoll: Too many open files"), which root cannot raise here. A worker steps one agent at a time,
// so its calls never overlap, and calls are the same HTTP requests whichever connection carries
// them (a release names its grant's id). 1,024 workers: about 4,100 descriptors.
class PerThreadClients final : public client::TokenmgrClient {
 public:
  explicit PerThreadClients(const Args& a) : args_(a) {}
  StatusOr<client::LockGrant> Lock(std::chrono::seconds wait, std::chrono::seconds ttl,
                                   const std::string& holder) override {
    return Mine().Lock(wait, ttl, holder);
  }
  Status Release(const std::string& id) override { return Mine().Release(id); }
  StatusOr<console::Directives> Report(const std::string& node, const console::AgentReport& r,
                                       std::chrono::milliseconds timeout) override {
    return Mine().Report(node, r, timeout);
  }
  void Abort() override {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [thread, c] : clients_) c->Abort();
  }
  uint64_t connections() {
    std::lock_guard<std::mutex> l(mu_);
    uint64_t n = 0;
    for (auto& [thread, c] : clients_) n += c->connections_opened();
    return n;
  }

 private:
  client::HttpTokenmgrClient& Mine() {
    std::lock_guard<std::mutex> l(mu_);
    auto& c = clients_[std::this_thread::get_id()];
    if (!c) c = MakeHttpClient(args_);
    return *c;
  }
  const Args& args_;
  std::mutex mu_;
  std::map<std::thread::id, std::unique_ptr<client::HttpTokenmgrClient>> clients_;
};

holder::AgentConfig SimConfig(const std::string& pool, const std::string& host_dir,
                              const std::string& node, int settle_ms, int heartbeat_s = 1) {
  holder::AgentConfig c;
  c.node = node;
  c.pod = node + "-pod";
  c.pool_dir = pool;
  c.host_dir = host_dir;
  c.heartbeat = std::chrono::seconds(heartbeat_s);
  c.claim_ttl = std::chrono::seconds(60);
  c.lock_ttl = std::chrono::seconds(10);
  c.settle = std::chrono::milliseconds(settle_ms);
  c.servers_conf = "### gpu.conf\n10.0.0.1:56001\n\n";
  return c;
}

// Checks that every host dir holds a license, all distinct, each claimed by its node in the
// pool. Returns the number of problems (printed). *last_claim_ms: the latest claimed_at_ms of
// those claims (wall clock, stamped by the holder just before it wrote its claim).
size_t Verify(const std::string& pool_dir, const std::vector<std::string>& nodes,
              const std::vector<std::string>& host_dirs, int64_t* last_claim_ms) {
  *last_claim_ms = 0;
  license::PosixFilesystem fs;
  license::Pool pool(fs, pool_dir);
  std::map<std::string, std::string> owner;
  size_t problems = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    license::Installer inst(fs, host_dirs[i]);
    auto m = inst.ReadManifest();
    if (!m.ok() || !*m) {
      if (++problems <= 5) std::printf("  verify: %s has no installed license\n", nodes[i].c_str());
      continue;
    }
    const std::string& lic = (*m)->license;
    auto [it, fresh] = owner.emplace(lic, nodes[i]);
    if (!fresh) {
      if (++problems <= 5) {
        std::printf("  verify: license %s installed on %s and %s\n", lic.c_str(), it->second.c_str(),
                    nodes[i].c_str());
      }
    }
    auto v = pool.ReadClaim(lic);
    if (v.state != license::ClaimState::kClaimed || v.record->node != nodes[i]) {
      if (++problems <= 5) std::printf("  verify: claim of %s does not name %s\n", lic.c_str(), nodes[i].c_str());
    } else {
      *last_claim_ms = std::max(*last_claim_ms, v.record->claimed_at_ms);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// mkpool

int MkPool(const Args& a) {
  std::string pool = a.Get("pool");
  long n = a.Int("n");
  MkdirP(pool);
  for (long i = 1; i <= n; ++i) {
    std::string name = "license" + std::to_string(i);
    std::string dir = license::LicenseDir(pool, name);
    MkdirP(license::JoinPath(dir, license::kLicenseKeyDir));
    WriteFile(license::LicenseKeyPath(pool, name), "bench-host-id-" + std::to_string(i) + "\n");
    WriteFile(license::JoinPath(dir, license::kLicenseKeyDir) + "/license.dat",
              "LICENSE bench " + std::to_string(i) + " " + std::string(200, 'x') + "\n");
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// cs: uncontended critical sections

// One pool's uncontended critical sections.
struct CsPool {
  std::string dir;
  std::unique_ptr<license::Pool> pool;
  size_t size = 0;
  std::vector<double> held_us, release_us, total_ms;
  uint64_t grants = 0;
};

// Runs one uncontended acquisition on `p` as a fresh node, records it, and gives the license
// back so the next run sees the same pool.
void OneCriticalSection(const Args& a, license::PosixFilesystem& fs, CsPool& p,
                        const std::string& node, const std::string& host) {
  MkdirP(host);
  auto client = MakeClient(a);
  RealSleeper sleeper;
  // Settle 0: it comes after the release, so it is not part of the critical section.
  holder::Agent agent(SimConfig(p.dir, host, node, 0), fs, *client, RealTimeSystem::Get(), sleeper);
  auto t0 = SteadyClock::now();
  agent.Start();
  for (int step = 0; step < 50 && !agent.Snapshot().ready; ++step) {
    auto d = agent.Step();
    if (!agent.Snapshot().ready && d.count() > 0) sleeper.SleepFor(d);
  }
  p.total_ms.push_back(Ms(SteadyClock::now() - t0));
  auto snap = agent.Snapshot();
  if (!snap.ready) Die("uncontended run " + node + " did not get a license: " + snap.last_error);
  for (Nanos h : client->held) p.held_us.push_back(Us(h));
  for (Nanos r : client->releasing) p.release_us.push_back(Us(r));
  p.grants += client->grants;
  (void)fs.RemoveAll(p.pool->ClaimPath(snap.license));
  (void)fs.RemoveAll(license::HintPath(p.dir, node));
  (void)fs.RemoveAll(host);
}

// --pool (and optionally --pool2): `runs` uncontended acquisitions on each. With two pools the
// runs alternate between them, so the disk's drift (fsync latency moves several-fold here
// within minutes) falls on both alike; one RESULT line per pool.
int CriticalSection(const Args& a) {
  std::string work = a.Get("work");
  long runs = a.Int("runs");
  std::string tag = a.Get("tag", "cs");
  license::PosixFilesystem fs;
  std::vector<CsPool> pools;
  for (const char* key : {"pool", "pool2"}) {
    if (std::string(key) == "pool2" && !a.Has(key)) continue;
    std::string dir = a.Get(key);
    CsPool p;
    p.dir = dir;
    p.pool = std::make_unique<license::Pool>(fs, dir);
    auto names = p.pool->Names();
    if (!names.ok()) Die(names.status().message());
    p.size = names->size();
    pools.push_back(std::move(p));
  }
  for (long i = 0; i < runs; ++i) {
    for (size_t k = 0; k < pools.size(); ++k) {
      std::string node = tag + "-" + std::to_string(k) + "-" + std::to_string(i);
      OneCriticalSection(a, fs, pools[k], node, work + "/" + node);
    }
  }
  for (const CsPool& p : pools) {
    std::printf("critical section, pool of %zu, %ld uncontended runs (%lu grants)%s: mean %.0f us, "
                "p50 %.0f us, p90 %.0f us, max %.0f us (of which the release call: mean %.0f us); whole "
                "acquisition (settle 0) mean %.2f ms\n",
                p.size, runs, static_cast<unsigned long>(p.grants),
                pools.size() > 1 ? ", alternating with the other pool" : "", Mean(p.held_us),
                Percentile(p.held_us, 0.5), Percentile(p.held_us, 0.9),
                Percentile(p.held_us, 1.0), Mean(p.release_us), Mean(p.total_ms));
    std::printf("RESULT mode=cs pool=%zu runs=%ld grants=%lu cs_mean_us=%.1f cs_p50_us=%.1f "
                "cs_p90_us=%.1f release_mean_us=%.1f acquire_mean_ms=%.3f\n",
                p.size, runs, static_cast<unsigned long>(p.grants), Mean(p.held_us),
                Percentile(p.held_us, 0.5), Percentile(p.held_us, 0.9), Mean(p.release_us),
                Mean(p.total_ms));
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// procs: real license-holder processes

long StatusKiB(pid_t pid, const std::string& field) {  // e.g. "VmRSS", "RssAnon", "RssFile"
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}
long VmRssKiB(pid_t pid) { return StatusKiB(pid, "VmRSS"); }

std::vector<pid_t> g_children;  // for the signal handler: stop them by PID
pid_t g_stopped_tokenmgr = 0;   // SIGSTOPped by the start barrier; continued on every exit
void StopChildren(int sig) {
  if (g_stopped_tokenmgr > 0) ::kill(g_stopped_tokenmgr, SIGCONT);
  for (pid_t p : g_children) {
    if (p > 0) ::kill(p, SIGKILL);
  }
  _exit(128 + sig);
}

// Connections waiting in the accept queue of the socket listening on 127.0.0.1:port (the
// rx_queue column of a LISTEN row in /proc/net/tcp), or -1 if there is no such socket.
long AcceptQueue(long port) {
  std::ifstream f("/proc/net/tcp");
  std::string line;
  std::getline(f, line);  // header
  char want[16];
  std::snprintf(want, sizeof want, ":%04lX", port);
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string sl, local, remote, st, queues;
    in >> sl >> local >> remote >> st >> queues;
    if (st != "0A" || local.size() < 5 || local.substr(local.size() - 5) != want) continue;
    auto colon = queues.find(':');
    if (colon == std::string::npos) continue;
    return std::stol(queues.substr(colon + 1), nullptr, 16);
  }
  return -1;
}

int Procs(const Args& a) {
  std::string pool_dir = a.Get("pool"), work = a.Get("work"), bin = a.Get("holder");
  long n = a.Int("n"), settle_ms = a.Int("settle-ms"), timeout_s = a.Int("timeout-s", 120);
  long heartbeat_s = a.Int("heartbeat-s", 1);
  // --tm-pid: the start barrier. The tokenmgr is stopped (SIGSTOP) while the holders start; the
  // kernel still completes their connections, so each holder's first lock request waits in the
  // listen socket's accept queue. When all N are queued, SIGCONT starts the race: that is t0.
  // Without it, t0 is the first fork.
  pid_t tm_pid = static_cast<pid_t>(a.Int("tm-pid", 0));
  long tm_port = a.Int("tm-port");
  std::string url = TokenmgrUrl(a);
  std::vector<std::string> nodes, hosts;
  for (long i = 0; i < n; ++i) {
    nodes.push_back("node-" + std::to_string(i));
    hosts.push_back(a.Get("hosts", work + "/hosts") + "/" + nodes.back());
    MkdirP(hosts.back());
  }
  MkdirP(work + "/logs");
  MkdirP(work + "/ports");
  g_children.assign(n, 0);
  ::signal(SIGINT, StopChildren);
  ::signal(SIGTERM, StopChildren);
  pid_t self = ::getpid();

  if (tm_pid > 0) {
    if (AcceptQueue(tm_port) != 0) Die("tokenmgr's accept queue is not empty before the start");
    if (::kill(tm_pid, SIGSTOP) != 0) Die("cannot stop the tokenmgr (--tm-pid)");
    g_stopped_tokenmgr = tm_pid;
  }
  auto fork_start = SteadyClock::now();
  for (long i = 0; i < n; ++i) {
    std::vector<std::string> env = {
        "NODE_NAME=" + nodes[i], "POD_NAME=" + nodes[i] + "-pod", "POOL_DIR=" + pool_dir,
        "HOST_DIR=" + hosts[i], "TOKENMGR_URL=" + url, "HEARTBEAT_SECONDS=" + std::to_string(heartbeat_s),
        "SETTLE_MS=" + std::to_string(settle_ms), "HEALTH_PORT=0", "HEALTH_BIND=127.0.0.1",
        "GPUTYPES=gpu", "gpu_1=10.0.0.1:56001", "LOG_FORMAT=text", "PATH=/usr/bin:/bin"};
    std::string port_file = work + "/ports/" + nodes[i];
    std::string log = work + "/logs/" + nodes[i] + ".log";
    std::vector<char*> envp, argv;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string arg_pf = "--port-file";
    argv = {bin.data(), arg_pf.data(), port_file.data(), nullptr};
    pid_t pid = ::fork();
    if (pid < 0) {
      std::fprintf(stderr, "fork failed after %ld holders\n", i);
      StopChildren(0);
    }
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the driver
      if (::getppid() != self) _exit(1);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 2);
        ::dup2(fd, 1);
        ::close(fd);
      }
      ::execve(bin.c_str(), argv.data(), envp.data());
      _exit(127);
    }
    g_children[i] = pid;
  }
  auto spawned = SteadyClock::now();
  // Barrier: wait until every holder has started, chosen its candidates and sent its first lock
  // request (queued in the kernel while the tokenmgr is stopped), then let them race.
  long queued = -1;
  if (tm_pid > 0) {
    auto barrier_deadline = spawned + std::chrono::seconds(std::min<long>(timeout_s, 30));
    while ((queued = AcceptQueue(tm_port)) < n && SteadyClock::now() < barrier_deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  auto t0 = SteadyClock::now();
  // Claims carry the holder's wall-clock claim time (same machine, same clock).
  const int64_t t0_wall_ms = UnixMillis(RealTimeSystem::Get().WallNow());
  if (tm_pid > 0) {
    ::kill(tm_pid, SIGCONT);
    g_stopped_tokenmgr = 0;
  }

  std::vector<double> done_ms(n, -1);
  long remaining = n;
  auto deadline = t0 + std::chrono::seconds(timeout_s);
  std::string died;
  while (remaining > 0 && SteadyClock::now() < deadline && died.empty()) {
    for (long i = 0; i < n; ++i) {
      if (done_ms[i] >= 0) continue;
      struct stat st;
      if (::stat((hosts[i] + "/" + license::kManifestFile).c_str(), &st) == 0) {
        done_ms[i] = Ms(SteadyClock::now() - t0);
        --remaining;
      }
    }
    int status;
    pid_t p = ::waitpid(-1, &status, WNOHANG);
    if (p > 0) {
      for (long i = 0; i < n; ++i) {
        if (g_children[i] == p) {
          died = nodes[i] + " exited early (see " + work + "/logs/" + nodes[i] + ".log)";
          g_children[i] = 0;
        }
      }
    }
    if (remaining > 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  double total_ms = Ms(SteadyClock::now() - t0);
  if (remaining == 0) total_ms = *std::max_element(done_ms.begin(), done_ms.end());

  // Resident memory of every holder now that it holds a license, and again after two
  // heartbeats (renewals ran).
  std::vector<double> rss_now, rss_later, rss_anon, rss_file;
  for (pid_t p : g_children) {
    if (p > 0) rss_now.push_back(VmRssKiB(p) / 1024.0);
  }
  if (remaining == 0) {
    auto until = SteadyClock::now() + std::chrono::milliseconds(2000 * heartbeat_s + 200);
    while (SteadyClock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    for (pid_t p : g_children) {
      if (p <= 0) continue;
      rss_later.push_back(VmRssKiB(p) / 1024.0);
      rss_anon.push_back(StatusKiB(p, "RssAnon") / 1024.0);
      rss_file.push_back(StatusKiB(p, "RssFile") / 1024.0);
    }
  }
  int64_t last_claim_ms = 0;
  size_t problems = remaining == 0 ? Verify(pool_dir, nodes, hosts, &last_claim_ms) : remaining;
  const double claimed_ms = last_claim_ms > 0 ? double(last_claim_ms - t0_wall_ms) : -1;

  // Stop every holder by PID: SIGTERM, then SIGKILL after 5 s.
  for (pid_t p : g_children) {
    if (p > 0) ::kill(p, SIGTERM);
  }
  auto stop_deadline = SteadyClock::now() + std::chrono::seconds(5);
  long alive = 0;
  for (pid_t p : g_children) alive += p > 0;
  while (alive > 0 && SteadyClock::now() < stop_deadline) {
    int status;
    pid_t p = ::waitpid(-1, &status, WNOHANG);
    if (p > 0) {
      for (auto& c : g_children) {
        if (c == p) {
          c = 0;
          --alive;
        }
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  for (pid_t& p : g_children) {
    if (p > 0) {
      ::kill(p, SIGKILL);
      ::waitpid(p, nullptr, 0);
      p = 0;
    }
  }

  std::vector<double> done;
  for (double d : done_ms) {
    if (d >= 0) done.push_back(d);
  }
  double spawn_ms = Ms(spawned - fork_start), barrier_ms = Ms(t0 - spawned);
  std::printf("%ld license-holder processes (settle %ld ms, heartbeat %ld s): %s in %.0f ms from "
              "%s (spawning took %.0f ms, then %.0f ms until %ld of %ld first lock requests were "
              "queued; %.0f ms from the first fork); per-holder p50 %.0f ms, p90 %.0f ms; "
              "problems %zu%s%s\n",
              n, settle_ms, heartbeat_s, remaining == 0 ? "all hold distinct licenses" : "NOT all licensed",
              total_ms, tm_pid > 0 ? "the start barrier" : "the first fork", spawn_ms, barrier_ms,
              queued, n, total_ms + Ms(t0 - fork_start), Percentile(done, 0.5),
              Percentile(done, 0.9), problems, died.empty() ? "" : "; ", died.c_str());
  std::printf("  VmRSS per holder after it holds a license: median %.2f MiB, max %.2f MiB; "
              "after 2 more heartbeats: median %.2f MiB, max %.2f MiB (median RssAnon %.2f MiB, "
              "RssFile %.2f MiB)\n",
              Percentile(rss_now, 0.5), Percentile(rss_now, 1.0), Percentile(rss_later, 0.5),
              Percentile(rss_later, 1.0), Percentile(rss_anon, 0.5), Percentile(rss_file, 0.5));
  std::printf("RESULT mode=procs n=%ld settle_ms=%ld heartbeat_s=%ld total_ms=%.1f spawn_ms=%.1f "
              "barrier_ms=%.1f queued=%ld from_fork_ms=%.1f p50_ms=%.1f "
              "p90_ms=%.1f unlicensed=%ld problems=%zu rss_median_mib=%.2f rss_max_mib=%.2f "
              "rss_anon_mib=%.2f rss_file_mib=%.2f claimed_ms=%.1f\n",
              n, settle_ms, heartbeat_s, total_ms, spawn_ms, barrier_ms, queued,
              total_ms + Ms(t0 - fork_start), Percentile(done, 0.5), Percentile(done, 0.9),
              remaining, problems, Percentile(rss_later.empty() ? rss_now : rss_later, 0.5),
              std::max(Percentile(rss_now, 1.0), Percentile(rss_later, 1.0)),
              Percentile(rss_anon, 0.5), Percentile(rss_file, 0.5), claimed_ms);
  return remaining == 0 && problems == 0 && died.empty() ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// sim: N agents in this process

struct SimHolder {
  std::string node, host;
  std::unique_ptr<TimingClient> client;
  std::unique_ptr<RealSleeper> sleeper;
  std::unique_ptr<holder::Agent> agent;
  bool started = false;
  double done_ms = -1;
  uint64_t steps = 0;
};

// std::thread with a small stack: thousands of them must fit.
class SmallThread {
 public:
  explicit SmallThread(std::function<void()> fn) : fn_(std::move(fn)) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    if (pthread_create(&tid_, &attr, &SmallThread::Run, this) != 0) Die("pthread_create failed");
    pthread_attr_destroy(&attr);
  }
  void Join() { pthread_join(tid_, nullptr); }

 private:
  static void* Run(void* self) {
    static_cast<SmallThread*>(self)->fn_();
    return nullptr;
  }
  std::function<void()> fn_;
  pthread_t tid_;
};

int Sim(const Args& a) {
  std::string pool_dir = a.Get("pool"), work = a.Get("work");
  long n = a.Int("n"), settle_ms = a.Int("settle-ms"), timeout_s = a.Int("timeout-s", 300);
  long threads = std::min(a.Int("threads", n), n);  // more workers than agents would idle
  long heartbeat_s = a.Int("heartbeat-s", 1);
  license::PosixFilesystem fs;
  std::vector<SimHolder> hs(n);
  PerThreadClients shared(a);
  std::atomic<bool> gate{false};
  std::vector<std::string> nodes, hosts;
  for (long i = 0; i < n; ++i) {
    SimHolder& h = hs[i];
    h.node = "sim-" + std::to_string(i);
    h.host = a.Get("hosts", work + "/hosts") + "/" + h.node;
    MkdirP(h.host);
    h.client = std::make_unique<TimingClient>(shared);
    h.client->gate = &gate;
    h.sleeper = std::make_unique<RealSleeper>();
    h.agent = std::make_unique<holder::Agent>(
        SimConfig(pool_dir, h.host, h.node, settle_ms, heartbeat_s), fs, *h.client,
        RealTimeSystem::Get(), *h.sleeper);
    nodes.push_back(h.node);
    hosts.push_back(h.host);
  }

  // Start barrier: every agent starts and takes its first step, which chooses its candidates
  // (reading the pool) and stops at the closed gate instead of asking for the mutex. On a
  // cluster every node does this on its own CPU at once; here it is timed apart (prep_ms).
  auto prep_start = SteadyClock::now();
  {
    std::atomic<long> next{0};
    std::vector<std::unique_ptr<SmallThread>> preppers;
    for (long t = 0; t < std::min<long>(threads, 8); ++t) {
      preppers.push_back(std::make_unique<SmallThread>([&] {
        for (long i; (i = next++) < n;) {
          hs[i].agent->Start();
          hs[i].started = true;
          hs[i].agent->Step();
        }
      }));
    }
    for (auto& t : preppers) t->Join();
  }
  double prep_ms = Ms(SteadyClock::now() - prep_start);
  long not_gated = 0;
  for (auto& h : hs) not_gated += h.client->gated != 1 || h.client->grants != 0;
  if (not_gated > 0) Die(std::to_string(not_gated) + " agents did not stop at the start gate");
  gate = true;

  // Run queue: every agent is due at t0; a worker steps the earliest due agent and puts it
  // back at now + the delay Step() asked for, until it is ready.
  using Due = std::pair<SteadyClock::time_point, long>;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> queue;
  std::mutex mu;
  std::condition_variable cv;
  long remaining = n;
  bool go = false;
  SteadyClock::time_point t0;
  int64_t t0_wall_ms = 0;
  SteadyClock::time_point deadline;

  auto worker = [&] {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return go; });
    while (remaining > 0 && SteadyClock::now() < deadline) {
      if (queue.empty()) {
        cv.wait_until(l, deadline);
        continue;
      }
      Due d = queue.top();
      if (d.first > SteadyClock::now()) {
        cv.wait_until(l, std::min(d.first, deadline));
        continue;
      }
      queue.pop();
      l.unlock();
      SimHolder& h = hs[d.second];
      Nanos delay{0};
      if (!h.started) {
        h.agent->Start();
        h.started = true;
      } else {
        delay = h.agent->Step();
        ++h.steps;
      }
      bool ready = h.agent->Snapshot().ready;
      auto now = SteadyClock::now();
      if (ready) h.done_ms = Ms(now - t0);
      l.lock();
      if (ready) {
        if (--remaining == 0) cv.notify_all();
      } else {
        queue.push({now + delay, d.second});
        cv.notify_one();
      }
    }
  };
  std::vector<std::unique_ptr<SmallThread>> pool_threads;
  for (long i = 0; i < threads; ++i) pool_threads.push_back(std::make_unique<SmallThread>(worker));
  {
    std::lock_guard<std::mutex> l(mu);
    t0 = SteadyClock::now();
    t0_wall_ms = UnixMillis(RealTimeSystem::Get().WallNow());
    deadline = t0 + std::chrono::seconds(timeout_s);
    for (long i = 0; i < n; ++i) queue.push({t0, i});
    go = true;
  }
  cv.notify_all();
  for (auto& t : pool_threads) t->Join();
  double total_ms = Ms(SteadyClock::now() - t0);
  std::vector<double> done;
  for (auto& h : hs) {
    if (h.done_ms >= 0) done.push_back(h.done_ms);
  }
  if (remaining == 0) total_ms = *std::max_element(done.begin(), done.end());

  uint64_t grants = 0, timeouts = 0, errors = 0;
  std::vector<double> held_us, release_us;
  double held_sum_ms = 0;
  for (auto& h : hs) {
    for (Nanos r : h.client->releasing) release_us.push_back(Us(r));
    grants += h.client->grants;
    timeouts += h.client->wait_timeouts;
    errors += h.client->errors;
    for (Nanos x : h.client->held) {
      held_us.push_back(Us(x));
      held_sum_ms += Ms(x);
    }
  }
  int64_t last_claim_ms = 0;
  size_t problems = remaining == 0 ? Verify(pool_dir, nodes, hosts, &last_claim_ms) : remaining;
  const double claimed_ms = last_claim_ms > 0 ? double(last_claim_ms - t0_wall_ms) : -1;
  uint64_t connections = shared.connections();
  std::printf("%ld simulated holders in one process (%ld worker threads, settle %ld ms really slept, "
              "heartbeat %ld s): %s in %.0f ms from the start gate (start-up and candidate choice "
              "before it: %.0f ms); per-holder p50 %.0f ms, p90 %.0f ms; problems %zu; "
              "%lu TCP connections to tokenmgr\n",
              n, threads, settle_ms, heartbeat_s,
              remaining == 0 ? "all hold distinct licenses" : "NOT all licensed", total_ms, prep_ms,
              Percentile(done, 0.5), Percentile(done, 0.9), problems,
              static_cast<unsigned long>(connections));
  std::printf("  mutex grants %lu (%lu did not end in a claim), long-poll timeouts %lu, client errors %lu; "
              "time held per grant under load: mean %.0f us, p50 %.0f us, p90 %.0f us (of which the "
              "release call: mean %.0f us); sum %.0f ms\n",
              static_cast<unsigned long>(grants), static_cast<unsigned long>(grants - (n - remaining)),
              static_cast<unsigned long>(timeouts), static_cast<unsigned long>(errors), Mean(held_us),
              Percentile(held_us, 0.5), Percentile(held_us, 0.9), Mean(release_us), held_sum_ms);
  std::printf("RESULT mode=sim n=%ld threads=%ld settle_ms=%ld heartbeat_s=%ld prep_ms=%.1f "
              "total_ms=%.1f p50_ms=%.1f p90_ms=%.1f "
              "unlicensed=%ld problems=%zu grants=%lu wasted_grants=%lu wait_timeouts=%lu "
              "held_mean_us=%.1f release_mean_us=%.1f held_sum_ms=%.1f claimed_ms=%.1f\n",
              n, threads, settle_ms, heartbeat_s, prep_ms, total_ms, Percentile(done, 0.5),
              Percentile(done, 0.9), remaining,
              problems, static_cast<unsigned long>(grants),
              static_cast<unsigned long>(grants - (n - remaining)), static_cast<unsigned long>(timeouts),
              Mean(held_us), Mean(release_us), held_sum_ms, claimed_ms);
  std::fflush(stdout);
  // Agents are not destroyed: nothing to release (the run's pool is thrown away), and tearing
  // down thousands of them only costs time.
  std::_Exit(remaining == 0 && problems == 0 ? 0 : 1);
}

}  // namespace

int main(int argc, char** argv) {
  Args a = ParseArgs(argc, argv);
  spdlog::set_level(spdlog::level::warn);  // thousands of agents: keep only warnings
  setvbuf(stdout, nullptr, _IOLBF, 0);
  if (a.mode == "mkpool") return MkPool(a);
  if (a.mode == "cs") return CriticalSection(a);
  if (a.mode == "procs") return Procs(a);
  if (a.mode == "sim") return Sim(a);
  Die("unknown mode " + a.mode);
}
