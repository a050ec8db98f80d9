// FakeClient: a tokenmgr stand-in for the agent's unit tests, with the real contract (one
// holder, strictly increasing tokens) and switches for outages. Test-only; not thread-safe.
//
//   FakeClient client;
//   Agent agent(config, fs, client, clock, sleeper);
//   client.down = true;  // every Lock fails as if tokenmgr were unreachable
#pragma once

#include <chrono>
#include <string>

#include "client/tokenmgr_client.h"

namespace lm::holder {

class FakeClient : public client::TokenmgrClient {
 public:
  StatusOr<client::LockGrant> Lock(std::chrono::seconds, std::chrono::seconds ttl,
                                   const std::string&) override {
    ++calls;
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
  void Abort() override {}
  uint64_t token = 100;
  bool held = false;
  bool down = false;
  Status refuse = Status::Ok();  // every Lock answers this error
  int calls = 0;
};

}  // namespace lm::holder
