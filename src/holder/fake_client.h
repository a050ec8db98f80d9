// FakeClient: a tokenmgr stand-in for the agent's unit tests, with the real contract (one
// holder, strictly increasing tokens) and switches for outages. Test-only; not thread-safe.
//
//   FakeClient client;
//   Agent agent(config, fs, client, clock, sleeper);
//   client.down = true;  // every Lock and Report fails as if tokenmgr were unreachable
//   client.cordoned.insert("n1");  // the next report of n1 is answered "cordoned"
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "client/tokenmgr_client.h"

namespace lm::holder {

class FakeClient : public client::TokenmgrClient {
 public:
  StatusOr<client::LockGrant> Lock(std::chrono::seconds, std::chrono::seconds ttl,
                                   const std::string&) override {
    ++calls;
    if (on_lock) on_lock();  // e.g. an operator acting while this agent waits for the mutex
    if (down) return Unavailable("connection refused");
    if (!refuse.ok()) return refuse;
    if (held) return FailedPrecondition("busy");
    held = true;
    return client::LockGrant{"id-" + std::to_string(token + 1), ++token, ttl.count(),
                             ttl.count() * 1000};
  }
  Status Release(const std::string&) override {
    held = false;
    return Status::Ok();
  }
  // Records the report; answers the directives below for its node and acknowledges its events
  // (at most ack_limit of them).
  StatusOr<console::Directives> Report(const std::string& node, const console::AgentReport& r,
                                       std::chrono::milliseconds timeout) override {
    reports.push_back(r);
    report_timeout = timeout;
    if (on_report) on_report();  // e.g. a slow tokenmgr: advances the fake clock
    if (down) return Unavailable("connection refused");
    if (!report_status.ok()) return report_status;
    console::Directives reply;
    reply.cordoned = cordoned.count(node) > 0;
    reply.disabled.assign(disabled.begin(), disabled.end());
    reply.acknowledged = std::min(r.events.size(), ack_limit);
    stored.insert(stored.end(), r.events.begin(),
                  r.events.begin() + static_cast<std::ptrdiff_t>(reply.acknowledged));
    return reply;
  }
  void Abort() override {}
  // Kinds (and details, "kind:detail" when there is one) of the stored events of `node`.
  std::vector<std::string> StoredKinds(const std::string& node) const {
    std::vector<std::string> out;
    for (const console::Event& e : stored) {
      if (e.node != node) continue;
      out.push_back(std::string(console::KindName(e.kind)) +
                    (e.detail.empty() ? "" : ":" + e.detail));
    }
    return out;
  }
  uint64_t token = 100;
  bool held = false;
  bool down = false;
  Status refuse = Status::Ok();  // every Lock answers this error
  int calls = 0;
  // Reports.
  std::vector<console::AgentReport> reports;
  std::vector<console::Event> stored;   // acknowledged events, in order
  std::set<std::string> cordoned;       // nodes
  std::set<std::string> disabled;       // licenses
  Status report_status = Status::Ok();  // every Report answers this error
  size_t ack_limit = SIZE_MAX;
  std::function<void()> on_report;
  std::function<void()> on_lock;
  std::chrono::milliseconds report_timeout{0};
};

}  // namespace lm::holder
