#include "tokenmgr/lock_api.h"

#include <fmt/compile.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace lm::tokenmgr {

LockApi::LockApi(lock::LockService& store, const Clock& clock, LockApiOptions options)
    : store_(store), clock_(clock), options_(std::move(options)) {}

bool LockApi::Authorized(std::string_view h) const {
  if (!options_.auth_token) return true;
  // The scheme is case-insensitive (RFC 9110 11.1), then one or more spaces, then the token.
  constexpr std::string_view kBearer = "bearer";
  if (h.size() <= kBearer.size() + 1 || h[kBearer.size()] != ' ') return false;
  for (size_t i = 0; i < kBearer.size(); ++i) {
    if ((h[i] | 0x20) != kBearer[i]) return false;
  }
  h.remove_prefix(kBearer.size());
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  return ConstantTimeEquals(h, *options_.auth_token);
}

Status LockApi::Authorize(std::string_view authorization, const http::Request& req) {
  if (Authorized(authorization)) return Status::Ok();
  // A client can cause these at any rate: one line per 10 s, with the count held back.
  // The path's last segment may be a lease id: it is not logged.
  std::string_view path = req.path;
  path = path.substr(0, std::min<size_t>(path.rfind('/') + 1, 128));
  if (uint64_t held_back = 0; unauthorized_log_.Allow(clock_.Now(), held_back)) {
    spdlog::warn(
        "refused {} {}… from {}: 401, {} bearer token{}", req.method, JsonEscape(path),
        req.remote_address.empty() ? "?" : req.remote_address,
        authorization.empty() ? "no" : "wrong",
        held_back ? fmt::format(" ({} more 401s since the last such line)", held_back) : "");
  }
  return Unauthenticated("missing or wrong bearer token");
}

StatusOr<lock::Seconds> LockApi::ParseWait(std::string_view text) const {
  auto wait = ParseWholeNumber(text, "timeout", limits().max_wait.count());
  if (!wait.ok()) return wait.status();
  return lock::Seconds(*wait);
}

StatusOr<lock::Seconds> LockApi::ParseTtl(std::string_view text) const {
  auto ttl = ParseWholeNumber(text, "ttl", limits().max_ttl.count());
  if (!ttl.ok()) return ttl.status();
  if (*ttl == 0) return InvalidArgument("ttl must be at least 1 second");
  return lock::Seconds(*ttl);
}

Status LockApi::CheckHolder(std::string_view holder) { return ValidateLabel(holder, "holder"); }

std::pair<std::string, uint64_t> LockApi::CurrentHolder() {
  std::pair<std::string, uint64_t> out;
  store_.GetView([&](StatusOr<lock::View> v) {
    if (v.ok() && v->held) out = {v->holder, v->token};
  });
  return out;
}

void LockApi::LogGrant(const std::string& holder, const lock::Grant& g) {
  LogInfoCompiled(FMT_COMPILE("lock granted to '{}' token={} ttl={}s id={}"), holder, g.token,
                  g.ttl.count(), Redact(g.id));
}

void LockApi::LogRelease(const std::string& holder, uint64_t token, const std::string& shown) {
  LogInfoCompiled(FMT_COMPILE("lock released by '{}' token={} id={}"), holder, token, shown);
}

void LockApi::LogWaiterGone(const std::string& holder) {
  spdlog::info("waiter '{}' went away; it leaves the queue", holder);
}

}  // namespace lm::tokenmgr
