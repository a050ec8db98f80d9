// handler_bench: what tokenmgr's request handling costs without the network, in one process:
// lock+release through the real TokenService (router, LockApi) on the embedded store (what a 1-client
// lock_bench cycle asks of the handler), against two GET /healthz (the same number of requests
// through the same path, with a trivial handler). Blocks of each alternate; prints ns per cycle
// of both and their ratio, so the figure is relative to a reference run in the same process.
//
//   handler_bench [--cycles=N] [--blocks=B] [--no-log]     (defaults 20000 and 20)
//
// Log lines go to stderr as in tokenmgr (buffered): redirect it, e.g. 2>/dev/null. --no-log
// raises the level to warn (no line per grant and release), to see what those lines cost.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/log.h"
#include "tokenmgr/in_process_service.h"

namespace {

using Clock = std::chrono::steady_clock;

std::string IdOf(const std::string& body) {
  static constexpr std::string_view kKey = "\"id\":\"";
  auto at = body.find(kKey);
  if (at == std::string::npos) throw std::runtime_error("no id in " + body);
  at += kKey.size();
  return body.substr(at, body.find('"', at) - at);
}

double NsPerCycle(int cycles, auto&& cycle) {
  auto t0 = Clock::now();
  for (int i = 0; i < cycles; ++i) cycle();
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / cycles;
}

long Flag(int argc, char** argv, std::string_view name, long fallback) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a.substr(0, name.size()) == name && a.size() > name.size() && a[name.size()] == '=') {
      return std::strtol(a.data() + name.size() + 1, nullptr, 10);
    }
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const int cycles = static_cast<int>(std::clamp(Flag(argc, argv, "--cycles", 20000), 1L, 10000000L));
  const int blocks = static_cast<int>(std::clamp(Flag(argc, argv, "--blocks", 20), 1L, 10000L));
  if (!lm::InitLogging("text", lm::LogFlush::kBuffered).ok()) return 1;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--no-log") spdlog::set_level(spdlog::level::warn);
  }
  lm::tokenmgr::InProcessService api;
  if (!api.Open().ok()) return 1;
  auto lock_release = [&] {
    auto g = api.Call("GET", "/api/token/lock/0?ttl=30&holder=bench");
    if (g.status != 200) throw std::runtime_error("lock answered " + g.body);
    auto r = api.Call("POST", "/api/token/release/" + IdOf(g.body));
    if (r.status != 200) throw std::runtime_error("release answered " + r.body);
  };
  auto two_health = [&] {
    for (int i = 0; i < 2; ++i) {
      if (api.Call("GET", "/healthz").status != 200) throw std::runtime_error("healthz");
    }
  };
  NsPerCycle(cycles / 10 + 1, lock_release);  // warm-up
  NsPerCycle(cycles / 10 + 1, two_health);
  std::vector<double> lock_ns, health_ns;
  for (int b = 0; b < blocks; ++b) {
    lock_ns.push_back(NsPerCycle(cycles, lock_release));
    health_ns.push_back(NsPerCycle(cycles, two_health));
  }
  std::sort(lock_ns.begin(), lock_ns.end());
  std::sort(health_ns.begin(), health_ns.end());
  const double l = lock_ns[lock_ns.size() / 2], h = health_ns[health_ns.size() / 2];
  std::printf("lock+release %.0f ns/cycle, 2x /healthz %.0f ns/cycle, ratio %.2f "
              "(medians of %d blocks of %d cycles)\n", l, h, l / h, blocks, cycles);
  lm::ShutdownLogging();
  return 0;
}
