// tokenmgr's configuration from flags and env (flags win), validated; every error names the
// flag or variable it came from. Thread-compatible.
//
//   StatusOr<TokenmgrConfig> c = ParseTokenmgrConfig(argc, argv, EnvFromEnviron());
//   if (!c.ok()) { std::cerr << c.status().message(); return 2; }
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "app/env.h"
#include "common/status.h"
#include "http/server.h"
#include "lock/lock_table.h"

namespace lm::app {

struct TokenmgrConfig {
  std::string bind_address = "0.0.0.0";
  uint16_t port = 8080;
  std::string port_file;  // written with the bound port (useful with port 0)
  lock::Options lock;
  std::string state_file;  // empty = memory only
  std::optional<std::string> auth_token;
  std::string log_format = "text";
  spdlog::level::level_enum log_level = spdlog::level::info;  // LOG_LEVEL / --log-level
  std::string pool_dir;  // read-only view of the license pool for the web page
  std::chrono::seconds claim_ttl{60};  // CLAIM_TTL_SECONDS: when the page calls a claim stale
  http::ServerOptions server;
  // Where the lock lives: "embedded" (default) or "etcd" (issue 6, several replicas).
  std::string store = "embedded";
  std::vector<std::string> etcd_endpoints;  // http(s)://host:port, tried in order
  // PEM files for https:// endpoints (empty = unset): the CA that signs etcd's certificate
  // (unset: the system CAs), and the client certificate and key for etcd's --client-cert-auth.
  std::string etcd_cacert, etcd_cert, etcd_key;
  std::string etcd_prefix = "/tokenmgr/";
  int64_t etcd_timeout_ms = 2000;
  // ETCD_PROTOCOL: "grpc" (default) or "json" (etcd's JSON gateway, for a proxy that passes only
  // HTTP/1.1).
  std::string etcd_protocol = "grpc";
  // ETCD_COMPACT=auto: compact etcd every interval to the revision of one interval ago (issue 20).
  bool etcd_compact = true;
  int64_t etcd_compact_interval_s = 10;
  // ETCD_QUEUE_STALL_MS: how long waiter keys of other replicas may stay at the head of the queue
  // while the lock is free before this replica removes them (issue 19: their replica is cut off).
  int64_t etcd_queue_stall_ms = 300;
  // The operator's console (issue 17): history bounds and how long a silent node stays listed.
  size_t events_max = 100000;                                    // EVENTS_MAX
  std::chrono::seconds events_max_age{std::chrono::hours(24 * 30)};  // EVENTS_MAX_AGE
  std::chrono::seconds node_retention{std::chrono::hours(24)};       // NODE_RETENTION
  bool help_shown = false;  // --help or --version printed; exit 0
};

StatusOr<TokenmgrConfig> ParseTokenmgrConfig(int argc, const char* const* argv, const EnvMap& env);

// A duration setting: whole seconds, or a whole number with a unit s, m, h or d ("90s", "30m",
// "24h", "30d"), from min_s to max_s seconds; fallback_s when unset. INVALID_ARGUMENT naming
// the flag or variable otherwise.
StatusOr<std::chrono::seconds> ParseDurationSetting(const ConfigValue& v, int64_t min_s,
                                                    int64_t max_s, int64_t fallback_s);

}  // namespace lm::app
