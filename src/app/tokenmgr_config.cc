#include "app/tokenmgr_config.h"

#include <arpa/inet.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <vector>

#include "common/process_metrics.h"
#include "common/strings.h"

namespace lm::app {

namespace {

// The seed's Go-style single-dash flags, mapped to ours.
std::string TranslateSeedFlag(const std::string& arg) {
  static const std::pair<const char*, const char*> kMap[] = {
      {"-listenport", "--listen-port"}, {"-lockduration", "--lock-duration"},
      {"-tplpath", "--tplpath"},        {"-APIBASEURL", "--apibaseurl"}};
  for (auto [seed, ours] : kMap) {
    std::string s(seed);
    if (arg == s) return ours;
    if (arg.rfind(s + "=", 0) == 0) return std::string(ours) + arg.substr(s.size());
  }
  return arg;
}

// An IPv4 or IPv6 literal; host names are refused so the listen address is never ambiguous.
Status ValidateBindAddress(const ConfigValue& v) {
  if (!v.text) return Status::Ok();
  unsigned char buf[sizeof(struct in6_addr)];
  if (inet_pton(AF_INET, v.text->c_str(), buf) == 1 ||
      inet_pton(AF_INET6, v.text->c_str(), buf) == 1) {
    return Status::Ok();
  }
  return InvalidArgument(v.source + " must be an IPv4 or IPv6 address, got '" +
                         v.text->substr(0, 64) + "'");
}

struct StoreFlags {
  std::optional<std::string> store, endpoints, prefix, timeout, cacert, cert, key;
  std::optional<std::string> compact, compact_interval;  // issue 20
  std::optional<std::string> protocol;
  std::optional<std::string> queue_stall;                 // issue 19
};

// A PEM file for TLS to etcd: a readable regular file (symlinks are followed: Kubernetes mounts
// Secrets that way) that holds PEM text. Whether it parses is checked when the store opens.
Status CheckPemFile(const ConfigValue& v) {
  const std::string& path = *v.text;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return InvalidArgument(
        v.source + ": '" + path + "' " +
        (std::filesystem::exists(path, ec) ? "is not a regular file" : "does not exist"));
  }
  std::ifstream in(path, std::ios::binary);
  std::string head(64 * 1024, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  if (in.bad() || (!in.eof() && !in)) {
    return InvalidArgument(v.source + ": cannot read '" + path + "'");
  }
  head.resize(static_cast<size_t>(in.gcount()));
  if (head.find("-----BEGIN ") == std::string::npos) {
    return InvalidArgument(v.source + ": '" + path + "' is not a PEM file");
  }
  return Status::Ok();
}

// ETCD_CACERT / ETCD_CERT / ETCD_KEY: only with https:// endpoints; certificate and key together.
Status ParseEtcdTls(const StoreFlags& f, const EnvMap& env, bool https, TokenmgrConfig& c) {
  ConfigValue ca = Pick(f.cacert, env, "ETCD_CACERT", "--etcd-cacert");
  ConfigValue cert = Pick(f.cert, env, "ETCD_CERT", "--etcd-cert");
  ConfigValue key = Pick(f.key, env, "ETCD_KEY", "--etcd-key");
  for (const ConfigValue* v : {&ca, &cert, &key}) {
    if (!v->text) continue;
    if (!https) {
      return InvalidArgument(v->source +
                             " is set but ETCD_ENDPOINTS are http://; use https:// "
                             "endpoints for TLS to etcd");
    }
    if (Status s = CheckPemFile(*v); !s.ok()) return s;
  }
  if (cert.text.has_value() != key.text.has_value()) {
    return InvalidArgument(std::string(cert.text ? cert.source : key.source) + " needs " +
                           (cert.text ? "ETCD_KEY/--etcd-key" : "ETCD_CERT/--etcd-cert") +
                           " too (a client certificate and its key go together)");
  }
  c.etcd_cacert = ca.Text("");
  c.etcd_cert = cert.Text("");
  c.etcd_key = key.Text("");
  return Status::Ok();
}

// CLAIM_TTL_SECONDS, the agents' variable: when the page calls a claim stale. Whole seconds,
// 1..86400, default 60; checked even without a pool, as the agents check it.
StatusOr<std::chrono::seconds> ParseClaimTtl(const EnvMap& env) {
  ConfigValue v = Pick(std::nullopt, env, "CLAIM_TTL_SECONDS", "");
  if (!v.text) return std::chrono::seconds(60);
  auto secs = ParseWholeNumber(*v.text, v.source, 86400);
  if (!secs.ok()) return secs.status();
  if (*secs == 0) return InvalidArgument("CLAIM_TTL_SECONDS must be at least 1");
  return std::chrono::seconds(*secs);
}

// STORE and the etcd settings (issue 6).
Status ParseStoreConfig(const StoreFlags& f, const EnvMap& env, TokenmgrConfig& c) {
  ConfigValue sv = Pick(f.store, env, "STORE", "--store");
  c.store = sv.Text("embedded");
  if (c.store != "embedded" && c.store != "etcd") {
    return InvalidArgument(sv.source + " must be 'embedded' or 'etcd'");
  }
  ConfigValue ev = Pick(f.endpoints, env, "ETCD_ENDPOINTS", "--etcd-endpoints");
  std::string list = ev.Text("");
  size_t start = 0;
  while (start <= list.size() && !list.empty()) {
    size_t comma = list.find(',', start);
    std::string item = list.substr(start, comma == std::string::npos ? std::string::npos
                                                                        : comma - start);
    while (!item.empty() && item.front() == ' ') item.erase(0, 1);
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) {
      if (item.find("://") != std::string::npos && item.rfind("http://", 0) != 0 &&
          item.rfind("https://", 0) != 0) {
        return InvalidArgument(ev.source +
                               ": endpoints must be http://host:port or "
                               "https://host:port");
      }
      c.etcd_endpoints.push_back(item);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (c.store == "etcd" && c.etcd_endpoints.empty()) {
    return InvalidArgument("STORE=etcd needs ETCD_ENDPOINTS/--etcd-endpoints");
  }
  size_t https = 0;
  for (const std::string& e : c.etcd_endpoints) https += e.rfind("https://", 0) == 0;
  if (https != 0 && https != c.etcd_endpoints.size()) {
    return InvalidArgument(ev.source + " mixes http:// and https://; use one scheme for all");
  }
  if (c.store == "etcd") {
    if (Status s = ParseEtcdTls(f, env, https != 0, c); !s.ok()) return s;
  }
  ConfigValue pv = Pick(f.prefix, env, "ETCD_PREFIX", "--etcd-prefix");
  c.etcd_prefix = pv.Text("/tokenmgr/");
  if (c.etcd_prefix.empty() || c.etcd_prefix.size() > 200) {
    return InvalidArgument(pv.source + " must be 1 to 200 characters");
  }
  auto t = Pick(f.timeout, env, "ETCD_TIMEOUT_MS", "--etcd-timeout-ms").Number(600000, 2000);
  if (!t.ok()) return t.status();
  if (*t < 50) return InvalidArgument("ETCD_TIMEOUT_MS/--etcd-timeout-ms must be at least 50");
  c.etcd_timeout_ms = *t;
  ConfigValue cv = Pick(f.compact, env, "ETCD_COMPACT", "--etcd-compact");
  if (cv.Text("auto") != "auto" && cv.Text("auto") != "off") {
    return InvalidArgument(cv.source + " must be 'auto' or 'off'");
  }
  c.etcd_compact = cv.Text("auto") == "auto";
  ConfigValue proto = Pick(f.protocol, env, "ETCD_PROTOCOL", "--etcd-protocol");
  if (proto.Text("grpc") != "grpc" && proto.Text("grpc") != "json") {
    return InvalidArgument(proto.source + " must be 'grpc' or 'json'");
  }
  c.etcd_protocol = proto.Text("grpc");
  auto ci = Pick(f.compact_interval, env, "ETCD_COMPACT_INTERVAL", "--etcd-compact-interval")
                .Number(24 * 3600, 10);
  if (!ci.ok()) return ci.status();
  if (*ci < 5) {
    return InvalidArgument("ETCD_COMPACT_INTERVAL/--etcd-compact-interval must be at least 5");
  }
  c.etcd_compact_interval_s = *ci;
  auto qs = Pick(f.queue_stall, env, "ETCD_QUEUE_STALL_MS", "--etcd-queue-stall-ms")
                .Number(600000, c.etcd_queue_stall_ms);
  if (!qs.ok()) return qs.status();
  if (*qs < 50) {
    return InvalidArgument("ETCD_QUEUE_STALL_MS/--etcd-queue-stall-ms must be at least 50");
  }
  c.etcd_queue_stall_ms = *qs;
  return Status::Ok();
}

// The console's bounds (issue 17): EVENTS_MAX, EVENTS_MAX_AGE, NODE_RETENTION.
struct ConsoleFlags {
  std::optional<std::string> events_max, events_max_age, node_retention;
};

Status ParseConsoleConfig(const ConsoleFlags& f, const EnvMap& env, TokenmgrConfig& c) {
  ConfigValue max = Pick(f.events_max, env, "EVENTS_MAX", "--events-max");
  auto n = max.Number(10000000, 100000);
  if (!n.ok()) return n.status();
  if (*n < 1) return InvalidArgument(max.source + " must be at least 1");
  c.events_max = static_cast<size_t>(*n);
  constexpr int64_t kDay = 24 * 3600;
  ConfigValue age = Pick(f.events_max_age, env, "EVENTS_MAX_AGE", "--events-max-age");
  auto a = ParseDurationSetting(age, 1, 3650 * kDay, 30 * kDay);
  if (!a.ok()) return a.status();
  c.events_max_age = *a;
  ConfigValue keep = Pick(f.node_retention, env, "NODE_RETENTION", "--node-retention");
  auto k = ParseDurationSetting(keep, 1, 365 * kDay, kDay);
  if (!k.ok()) return k.status();
  if (*k < c.claim_ttl) {
    return InvalidArgument(keep.source + " (" + std::to_string(k->count()) +
                           "s) must be at least CLAIM_TTL_SECONDS (" +
                           std::to_string(c.claim_ttl.count()) +
                           "s): a silent node is shown as gone before it is dropped");
  }
  c.node_retention = *k;
  return Status::Ok();
}

}  // namespace

StatusOr<std::chrono::seconds> ParseDurationSetting(const ConfigValue& v, int64_t min_s,
                                                    int64_t max_s, int64_t fallback_s) {
  if (!v.text) return std::chrono::seconds(fallback_s);
  std::string_view text = Trim(*v.text);
  int64_t unit = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 's':
        unit = 1;
        break;
      case 'm':
        unit = 60;
        break;
      case 'h':
        unit = 3600;
        break;
      case 'd':
        unit = 24 * 3600;
        break;
      default:
        unit = 0;
    }
    if (unit != 0) text.remove_suffix(1);
  }
  auto n = ParseWholeNumber(text, v.source, max_s);
  if (!n.ok() || *n > max_s / std::max<int64_t>(unit, 1)) {
    return InvalidArgument(v.source + " must be a duration from " + std::to_string(min_s) +
                           "s to " + std::to_string(max_s / (24 * 3600)) +
                           "d such as 90s, 30m, 24h or 30d, got '" + v.text->substr(0, 32) + "'");
  }
  const int64_t seconds = *n * std::max<int64_t>(unit, 1);
  if (seconds < min_s) {
    return InvalidArgument(v.source + " must be at least " + std::to_string(min_s) + "s");
  }
  return std::chrono::seconds(seconds);
}

StatusOr<TokenmgrConfig> ParseTokenmgrConfig(int argc, const char* const* argv,
                                             const EnvMap& env) {
  CLI::App app{"tokenmgr: a cluster-wide lease-based mutex over HTTP"};
  const std::string version = "tokenmgr " + std::string(BuildVersion());
  app.set_version_flag("--version", version);
  app.footer(
      "Operator commands (a client of a running tokenmgr; docs/operations.md, \"Console\"):\n"
      "  tokenmgr status | licenses | nodes | events | usage | cordon NODE | uncordon NODE |\n"
      "  disable LICENSE | enable LICENSE   [-o json] [--url URL] [--token-file FILE]");
  std::optional<std::string> port, lock_duration, bind, state_file, max_wait, max_ttl, auth_file,
      log_format, log_level, pool_dir, max_conn, max_waiters, port_file, tplpath, apibaseurl,
      idle_timeout, read_timeout;
  StoreFlags sf;
  ConsoleFlags cf;
  app.add_option("--events-max", cf.events_max,
                 "events the history keeps, 1..10000000 (env EVENTS_MAX, 100000)");
  app.add_option("--events-max-age", cf.events_max_age,
                 "oldest event kept, e.g. 30d, 12h (env EVENTS_MAX_AGE, 30d)");
  app.add_option("--node-retention", cf.node_retention,
                 "how long a silent node stays listed, e.g. 24h (env NODE_RETENTION, 24h)");
  app.add_option("-p,--listen-port", port, "TCP port (env LISTENPORT, default 8080; 0 = any)");
  app.add_option("-d,--lock-duration", lock_duration,
                 "default lease length in seconds (env LOCKDURATION, default 10)");
  app.add_option("--bind-address", bind, "IP address to listen on (env BIND_ADDRESS)");
  app.add_option("--state-file", state_file, "state file; unset = memory only (env STATE_FILE)");
  app.add_option("--max-wait", max_wait, "largest :timeout in seconds (env MAX_WAIT, 300)");
  app.add_option("--max-ttl", max_ttl, "largest lease in seconds (env MAX_TTL, 3600)");
  app.add_option("--auth-token-file", auth_file, "bearer token file (env AUTH_TOKEN_FILE)");
  app.add_option("--log-format", log_format, "text or json (env LOG_FORMAT)");
  app.add_option("--log-level", log_level,
                 "trace, debug, info, warn or error (env LOG_LEVEL, default info)");
  app.add_option("--pool-dir", pool_dir, "license pool, read-only, for the web page (env POOL_DIR)");
  app.add_option("--max-connections", max_conn, "open connection limit (env MAX_CONNECTIONS, 4096)");
  app.add_option("--max-waiters", max_waiters, "waiter queue limit (env MAX_WAITERS, 10000)");
  std::optional<std::string> max_header_bytes, max_header_count, max_body_bytes;
  app.add_option("--max-header-bytes", max_header_bytes,
                 "request line + headers limit (env MAX_HEADER_BYTES, 8192)");
  app.add_option("--max-header-count", max_header_count,
                 "request header field limit (env MAX_HEADER_COUNT, 64)");
  app.add_option("--max-body-bytes", max_body_bytes,
                 "request body limit (env MAX_BODY_BYTES, 65536)");
  app.add_option("--idle-timeout", idle_timeout, "keep-alive idle seconds (env IDLE_TIMEOUT, 60)");
  app.add_option("--read-timeout", read_timeout, "seconds to read one request (env READ_TIMEOUT, 10)");
  app.add_option("--store", sf.store, "embedded or etcd (env STORE, default embedded)");
  app.add_option("--etcd-endpoints", sf.endpoints,
                 "comma-separated http(s)://host:port (env ETCD_ENDPOINTS)");
  app.add_option("--etcd-prefix", sf.prefix, "etcd key prefix (env ETCD_PREFIX, /tokenmgr/)");
  app.add_option("--etcd-timeout-ms", sf.timeout,
                 "etcd request timeout (env ETCD_TIMEOUT_MS, 2000)");
  app.add_option("--etcd-cacert", sf.cacert,
                 "PEM CA for https:// etcd; unset = system CAs (env ETCD_CACERT)");
  app.add_option("--etcd-cert", sf.cert, "PEM client certificate for etcd (env ETCD_CERT)");
  app.add_option("--etcd-key", sf.key, "PEM key of --etcd-cert (env ETCD_KEY)");
  app.add_option("--etcd-protocol", sf.protocol,
                 "grpc, or json: etcd's JSON gateway over HTTP/1.1 (env ETCD_PROTOCOL, grpc)");
  app.add_option("--etcd-compact", sf.compact,
                 "auto: compact etcd's history; off: leave it to etcd (env ETCD_COMPACT, auto)");
  app.add_option(
      "--etcd-compact-interval", sf.compact_interval,
      "seconds between compactions, and of history kept (env ETCD_COMPACT_INTERVAL, 10)");
  app.add_option("--etcd-queue-stall-ms", sf.queue_stall,
                 "ms other replicas' waiters may stay ahead of ours while the lock is free "
                 "(env ETCD_QUEUE_STALL_MS, 300)");
  app.add_option("--port-file", port_file, "write the bound port to this file");
  app.add_option("--tplpath", tplpath, "ignored (the seed's template path; pages are built in)");
  app.add_option("--apibaseurl", apibaseurl, "ignored (the seed's self-call URL; not needed)");

  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.push_back(TranslateSeedFlag(argv[i]));
  TokenmgrConfig c;
  auto shown = ParseCommandLine(app, args, version);
  if (!shown.ok()) return shown.status();
  if (*shown) {
    c.help_shown = true;
    return c;
  }

  auto num = [&](const std::optional<std::string>& flag, const char* var, const char* name,
                 int64_t max, int64_t fallback) {
    return Pick(flag, env, var, name).Number(max, fallback);
  };
  auto p = num(port, "LISTENPORT", "--listen-port", 65535, 8080);
  if (!p.ok()) return p.status();
  c.port = static_cast<uint16_t>(*p);
  auto mw = num(max_wait, "MAX_WAIT", "--max-wait", 24 * 3600, 300);
  if (!mw.ok()) return mw.status();
  auto mt = num(max_ttl, "MAX_TTL", "--max-ttl", 7 * 24 * 3600, 3600);
  if (!mt.ok()) return mt.status();
  if (*mt < 1) return InvalidArgument("MAX_TTL/--max-ttl must be at least 1");
  auto ld = num(lock_duration, "LOCKDURATION", "--lock-duration", *mt, 10);
  if (!ld.ok()) return ld.status();
  if (*ld < 1) return InvalidArgument("LOCKDURATION/--lock-duration must be at least 1");
  auto mc = num(max_conn, "MAX_CONNECTIONS", "--max-connections", 1000000, 4096);
  if (!mc.ok()) return mc.status();
  if (*mc < 1) return InvalidArgument("MAX_CONNECTIONS/--max-connections must be at least 1");
  auto mq = num(max_waiters, "MAX_WAITERS", "--max-waiters", 10000000, 10000);
  if (!mq.ok()) return mq.status();
  auto it = num(idle_timeout, "IDLE_TIMEOUT", "--idle-timeout", 3600, 60);
  if (!it.ok()) return it.status();
  auto rt = num(read_timeout, "READ_TIMEOUT", "--read-timeout", 3600, 10);
  if (!rt.ok()) return rt.status();
  if (*it < 1 || *rt < 1) return InvalidArgument("IDLE_TIMEOUT and READ_TIMEOUT must be >= 1");
  auto mhb = num(max_header_bytes, "MAX_HEADER_BYTES", "--max-header-bytes", 1 << 20, 8192);
  if (!mhb.ok()) return mhb.status();
  if (*mhb < 256) return InvalidArgument("MAX_HEADER_BYTES/--max-header-bytes must be >= 256");
  auto mhc = num(max_header_count, "MAX_HEADER_COUNT", "--max-header-count", 10000, 64);
  if (!mhc.ok()) return mhc.status();
  if (*mhc < 4) return InvalidArgument("MAX_HEADER_COUNT/--max-header-count must be >= 4");
  auto mbb = num(max_body_bytes, "MAX_BODY_BYTES", "--max-body-bytes", 16 << 20, 65536);
  if (!mbb.ok()) return mbb.status();
  c.server.max_header_bytes = static_cast<size_t>(*mhb);
  c.server.max_header_count = static_cast<size_t>(*mhc);
  c.server.max_body_bytes = static_cast<size_t>(*mbb);
  c.lock.default_ttl = lock::Seconds(*ld);
  c.lock.max_ttl = lock::Seconds(*mt);
  c.lock.max_wait = lock::Seconds(*mw);
  c.lock.max_waiters = static_cast<size_t>(*mq);
  c.server.max_connections = static_cast<size_t>(*mc);
  c.server.idle_timeout = std::chrono::seconds(*it);
  c.server.read_timeout = std::chrono::seconds(*rt);
  ConfigValue bind_value = Pick(bind, env, "BIND_ADDRESS", "--bind-address");
  if (Status s = ValidateBindAddress(bind_value); !s.ok()) return s;
  c.bind_address = bind_value.Text("0.0.0.0");
  c.server.listen_setting = "LISTENPORT/--listen-port, BIND_ADDRESS/--bind-address";
  c.state_file = Pick(state_file, env, "STATE_FILE", "--state-file").Text("");
  c.log_format = Pick(log_format, env, "LOG_FORMAT", "--log-format").Text("text");
  if (c.log_format != "text" && c.log_format != "json") {
    return InvalidArgument(Pick(log_format, env, "LOG_FORMAT", "--log-format").source +
                           " must be 'text' or 'json'");
  }
  auto level = PickLogLevel(log_level, env);
  if (!level.ok()) return level.status();
  c.log_level = *level;
  c.pool_dir = Pick(pool_dir, env, "POOL_DIR", "--pool-dir").Text("");
  auto claim_ttl = ParseClaimTtl(env);
  if (!claim_ttl.ok()) return claim_ttl.status();
  c.claim_ttl = *claim_ttl;
  if (Status s = ParseConsoleConfig(cf, env, c); !s.ok()) return s;
  c.port_file = port_file.value_or("");
  if (Status s = ParseStoreConfig(sf, env, c); !s.ok()) return s;
  ConfigValue auth = Pick(auth_file, env, "AUTH_TOKEN_FILE", "--auth-token-file");
  if (auth.text) {
    auto token = ReadSecretFile(*auth.text, auth.source);
    if (!token.ok()) return token.status();
    c.auth_token = *token;
  }
  return c;
}

}  // namespace lm::app
