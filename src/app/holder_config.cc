#include "app/holder_config.h"

#include <CLI/CLI.hpp>
#include <sys/stat.h>

#include <algorithm>
#include <iostream>

#include "common/process_metrics.h"
#include "common/strings.h"
#include "license/servers_conf.h"

namespace lm::app {

namespace {

// NFD_FEATURE_FILE: a file (or not yet one) in an existing directory, named as NFD reads it.
Status ValidateFeatureFile(const std::string& path, const std::string& source) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument(source + " (" + path + ") " + why +
                           "; expected e.g. /etc/kubernetes/node-feature-discovery/features.d/"
                           "bitfusion-license");
  };
  if (path[0] != '/' || path.find("/../") != std::string::npos || path.size() > 4096) {
    return bad("must be an absolute path without '..'");
  }
  std::string name = path.substr(path.rfind('/') + 1);
  if (name.empty() || name == "..") return bad("must name a file, not a directory");
  if (name[0] == '.') return bad("names a dot file, which NFD ignores");
  std::string parent = path.substr(0, std::max<size_t>(path.rfind('/'), 1));
  struct stat st;
  if (::stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return bad("is in " + parent +
               ", which is not an existing directory (mount NFD's features.d there)");
  }
  if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
    return bad("exists and is not a regular file");
  }
  return Status::Ok();
}

// A boolean variable: true/1, false/0, or unset/empty for `fallback`.
StatusOr<bool> EnvBool(const EnvMap& env, const char* name, bool fallback) {
  auto it = env.find(name);
  if (it == env.end() || it->second.empty()) return fallback;
  if (it->second == "true" || it->second == "1") return true;
  if (it->second == "false" || it->second == "0") return false;
  return InvalidArgument(std::string(name) + " must be true or false (got '" +
                         it->second.substr(0, 32) + "')");
}

}  // namespace

StatusOr<HolderConfig> ParseHolderConfig(int argc, const char* const* argv, const EnvMap& env) {
  CLI::App app{"license-holder: claims, installs, keeps and gives back one license per node"};
  const std::string version = "license-holder " + std::string(BuildVersion());
  app.set_version_flag("--version", version);
  app.require_subcommand(0, 1);
  auto* run = app.add_subcommand("run", "run the agent (default)");
  auto* daemonset = app.add_subcommand("daemonset", "the seed's name for run");
  auto* release = app.add_subcommand(
      "release", "give this node's license back to the pool and remove it from the host dir");
  (void)run;
  (void)daemonset;
  std::optional<std::string> url, node, pod, pool, host, heartbeat, ttl, health_port, health_bind,
      log_format, auth_file, settle_ms, lock_ttl, nfd_file;
  std::string port_file;
  bool release_on_exit = false;
  bool no_report = false;
  app.add_option("--tokenmgr-url", url, "tokenmgr API base (env TOKENMGR_URL)");
  app.add_option("--node-name", node, "this node's name (env NODE_NAME, required)");
  app.add_option("--pod-name", pod, "this pod's name (env POD_NAME)");
  app.add_option("--pool-dir", pool, "license pool (env POOL_DIR, /mnt/bitfusionio)");
  app.add_option("--host-dir", host, "node license dir (env HOST_DIR, /etc/bitfusionio)");
  app.add_option("--heartbeat-seconds", heartbeat, "renewal period (env HEARTBEAT_SECONDS, 10)");
  app.add_option("--claim-ttl-seconds", ttl, "claim lifetime (env CLAIM_TTL_SECONDS, 60)");
  app.add_option("--health-port", health_port, "health/metrics port (env HEALTH_PORT, 8081; 0 = any)");
  app.add_option("--health-bind", health_bind, "health/metrics address (env HEALTH_BIND, 0.0.0.0)");
  app.add_option("--log-format", log_format, "text or json (env LOG_FORMAT)");
  app.add_option("--tokenmgr-auth-token-file", auth_file, "bearer token file (env TOKENMGR_AUTH_TOKEN_FILE)");
  app.add_option("--settle-ms", settle_ms, "wait after claiming before trusting it (env SETTLE_MS)");
  app.add_option("--lock-ttl-seconds", lock_ttl, "mutex lease to ask for (env LOCK_TTL_SECONDS, 10)");
  app.add_flag("--release-on-exit", release_on_exit, "give the license back on SIGTERM (env RELEASE_ON_EXIT=true)");
  app.add_option("--nfd-feature-file", nfd_file,
                 "NFD feature file labelling the node while it holds a license (env "
                 "NFD_FEATURE_FILE; off when unset)");
  app.add_flag("--no-report", no_report,
               "do not report this node's state and events to tokenmgr's console, and ignore its "
               "cordons and disabled licenses (env REPORT_STATUS=false; default: report)");
  app.add_option("--port-file", port_file, "write the bound health port to this file");

  HolderConfig c;
  auto shown =
      ParseCommandLine(app, std::vector<std::string>(argv + 1, argv + argc), version);
  if (!shown.ok()) return shown.status();
  if (*shown) {
    c.command = HolderCommand::kHelp;
    return c;
  }
  if (release->parsed()) c.command = HolderCommand::kRelease;

  holder::AgentConfig& a = c.agent;
  ConfigValue n = Pick(node, env, "NODE_NAME", "--node-name");
  if (!n.text) return InvalidArgument("NODE_NAME is required (set it from the downward API: spec.nodeName)");
  LM_RETURN_IF_ERROR(ValidateLabel(*n.text, n.source));
  a.node = *n.text;
  ConfigValue p = Pick(pod, env, "POD_NAME", "--pod-name");
  if (p.text) {
    LM_RETURN_IF_ERROR(ValidateLabel(*p.text, p.source));
    a.pod = *p.text;
  }
  a.pool_dir = Pick(pool, env, "POOL_DIR", "--pool-dir").Text("/mnt/bitfusionio");
  a.host_dir = Pick(host, env, "HOST_DIR", "--host-dir").Text("/etc/bitfusionio");
  for (const std::string* dir : {&a.pool_dir, &a.host_dir}) {
    if (dir->empty() || (*dir)[0] != '/' || dir->find("/../") != std::string::npos ||
        dir->size() > 4096) {
      return InvalidArgument((dir == &a.pool_dir ? "POOL_DIR" : "HOST_DIR") +
                             std::string(" must be an absolute path without '..'"));
    }
  }
  if (a.pool_dir == a.host_dir) return InvalidArgument("POOL_DIR and HOST_DIR must differ");
  auto hb = Pick(heartbeat, env, "HEARTBEAT_SECONDS", "--heartbeat-seconds").Number(3600, 10);
  if (!hb.ok()) return hb.status();
  if (*hb < 1) return InvalidArgument("HEARTBEAT_SECONDS must be at least 1");
  auto ct = Pick(ttl, env, "CLAIM_TTL_SECONDS", "--claim-ttl-seconds").Number(86400, 60);
  if (!ct.ok()) return ct.status();
  if (*ct < 3 * *hb) {
    return InvalidArgument("CLAIM_TTL_SECONDS (" + std::to_string(*ct) +
                           ") must be at least 3 x HEARTBEAT_SECONDS (" + std::to_string(*hb) + ")");
  }
  a.heartbeat = std::chrono::seconds(*hb);
  a.claim_ttl = std::chrono::seconds(*ct);
  auto st = Pick(settle_ms, env, "SETTLE_MS", "--settle-ms").Number(60000, std::min<int64_t>(2000, *hb * 500));
  if (!st.ok()) return st.status();
  a.settle = std::chrono::milliseconds(*st);
  auto lt = Pick(lock_ttl, env, "LOCK_TTL_SECONDS", "--lock-ttl-seconds").Number(3600, 10);
  if (!lt.ok()) return lt.status();
  if (*lt < 2) return InvalidArgument("LOCK_TTL_SECONDS must be at least 2");
  a.lock_ttl = std::chrono::seconds(*lt);
  auto hp = Pick(health_port, env, "HEALTH_PORT", "--health-port").Number(65535, 8081);
  if (!hp.ok()) return hp.status();
  c.health_port = static_cast<uint16_t>(*hp);
  c.health_bind = Pick(health_bind, env, "HEALTH_BIND", "--health-bind").Text("0.0.0.0");
  ConfigValue lf = Pick(log_format, env, "LOG_FORMAT", "--log-format");
  c.log_format = lf.Text("text");
  if (c.log_format != "text" && c.log_format != "json") {
    return InvalidArgument(lf.source + " must be 'text' or 'json'");
  }
  c.tokenmgr_url = Pick(url, env, "TOKENMGR_URL", "--tokenmgr-url").Text(c.tokenmgr_url);
  ConfigValue af = Pick(auth_file, env, "TOKENMGR_AUTH_TOKEN_FILE", "--tokenmgr-auth-token-file");
  if (af.text) {
    auto token = ReadSecretFile(*af.text, af.source);
    if (!token.ok()) return token.status();
    c.auth_token = *token;
  }
  auto roe = EnvBool(env, "RELEASE_ON_EXIT", false);
  if (!roe.ok()) return roe.status();
  a.release_on_exit = release_on_exit || *roe;
  auto report = EnvBool(env, "REPORT_STATUS", true);
  if (!report.ok()) return report.status();
  a.report = !no_report && *report;
  a.version = std::string(BuildVersion());
  ConfigValue nfd = Pick(nfd_file, env, "NFD_FEATURE_FILE", "--nfd-feature-file");
  if (nfd.text && !nfd.text->empty()) {
    LM_RETURN_IF_ERROR(ValidateFeatureFile(*nfd.text, nfd.source));
    a.nfd_feature_file = *nfd.text;
  }
  auto groups = license::ParseServerGroups(env);
  if (!groups.ok()) return groups.status();
  a.servers_conf = license::RenderServersConf(*groups);
  c.port_file = port_file;
  return c;
}

}  // namespace lm::app
