// LockApi: the typed lock operations of tokenmgr (Lock, Renew, Release, GetStatus) with their
// argument rules, credentials check and log lines. The JSON routes (token_service.h) and the web
// page's forms (ui.h) both call it, so both accept, refuse and log the same way. Results come
// through callbacks, on the lock store's event-loop thread, possibly later (a lock request may
// wait). Not thread-safe: use it on that thread.
//
//   LockApi api(store, time, {.auth_token = token});
//   auto ttl = api.ParseTtl("30");  // INVALID_ARGUMENT naming "ttl" when out of range
//   api.Lock({.holder = "node-1", .wait = lock::Seconds(5), .ttl = *ttl},
//            [](StatusOr<lock::Grant> g) { ... });
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/clock.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"
#include "http/message.h"
#include "lock/lock_service.h"

namespace lm::tokenmgr {

struct LockApiOptions {
  std::optional<std::string> auth_token;  // when set, lock/renew/release need it
};

struct LockRequest {
  std::string holder;                // checked with CheckHolder
  lock::Seconds wait{0};             // from ParseWait
  std::optional<lock::Seconds> ttl;  // from ParseTtl; unset: the default TTL
};

class LockApi {
 public:
  using CancelFn = lock::LockService::CancelFn;

  // `store` and `clock` (for the rate limit of the refusal log) must outlive this object.
  LockApi(lock::LockService& store, const Clock& clock, LockApiOptions options);

  bool auth_enabled() const { return options_.auth_token.has_value(); }
  const lock::Options& limits() const { return store_.options(); }

  // OK when auth is off or `authorization` (an Authorization header value) is "Bearer <the
  // token>" (the scheme in any case, then one or more spaces). Else UNAUTHENTICATED, logged at
  // most once per 10 s with the count held back, naming `request`'s method, remote address and
  // path up to its last '/' (never a lease id).
  Status Authorize(std::string_view authorization, const http::Request& request);
  bool Authorized(std::string_view authorization) const;

  // The argument rules, the same for every caller; errors are INVALID_ARGUMENT naming the field.
  StatusOr<lock::Seconds> ParseWait(std::string_view text) const;  // "timeout": 0..max_wait
  StatusOr<lock::Seconds> ParseTtl(std::string_view text) const;   // "ttl": 1..max_ttl
  static Status CheckHolder(std::string_view holder);              // "holder": a label

  // Asks for the lock. `done` (void(StatusOr<lock::Grant>)) runs once, unless the returned
  // function is called first (the client went away: the waiter leaves the queue). A grant is
  // logged with the holder, token, TTL and the redacted id.
  template <typename Done>
  CancelFn Lock(LockRequest request, Done done) {
    lock::AcquireRequest ar;
    ar.holder = std::move(request.holder);
    ar.ttl = request.ttl.value_or(limits().default_ttl);
    ar.wait = request.wait;
    std::string holder = ar.holder;
    return store_.Acquire(std::move(ar), [done = std::move(done), holder = std::move(holder)](
                                             StatusOr<lock::Grant> g) mutable {
      if (g.ok()) LogGrant(holder, *g);
      done(std::move(g));
    });
  }
  // Ends the lease `id`. `done` (void(Status)) runs once; a release is logged with the holder it
  // ended and the redacted id.
  template <typename Done>
  void Release(std::string_view id, Done done) {
    auto current = CurrentHolder();  // not a structured binding: clang cannot capture those
    store_.Release(id, [done = std::move(done), shown = Redact(id),
                        holder = std::move(current.first),
                        token = current.second](lm::Status s) mutable {
      if (s.ok()) LogRelease(holder, token, shown);
      done(std::move(s));
    });
  }
  // Extends the lease `id` by `ttl` (unset: the default TTL) from now.
  template <typename Done>
  void Renew(std::string id, std::optional<lock::Seconds> ttl, Done done) {
    store_.Renew(std::move(id), ttl.value_or(limits().default_ttl), std::move(done));
  }
  // The lock's state (never the lease id).
  void GetStatus(lock::LockService::ViewDone done) { store_.GetView(std::move(done)); }

  // For the log line when a waiting client went away.
  static void LogWaiterGone(const std::string& holder);

 private:
  static void LogGrant(const std::string& holder, const lock::Grant& g);
  static void LogRelease(const std::string& holder, uint64_t token, const std::string& shown);
  // Who holds the lock now, for the release log line (the stores answer GetView at once, and
  // there is one lock).
  std::pair<std::string, uint64_t> CurrentHolder();

  lock::LockService& store_;
  const Clock& clock_;
  LockApiOptions options_;
  RateLimitedLog unauthorized_log_{std::chrono::seconds(10)};
};

}  // namespace lm::tokenmgr
