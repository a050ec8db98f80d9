// Config sources: the process environment as a map (tests pass their own), and helpers that
// take a value from a flag or else an env var and name the source in every error.
// Thread-compatible.
//
//   EnvMap env = EnvFromEnviron();
//   ConfigValue v = Pick(flag_value, env, "LISTENPORT", "--listen-port");
//   StatusOr<int64_t> port = v.Number(65535);  // error names LISTENPORT or --listen-port
#pragma once

#include <spdlog/common.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace CLI {
class App;
}

namespace lm::app {

using EnvMap = std::map<std::string, std::string>;
EnvMap EnvFromEnviron();

struct ConfigValue {
  std::optional<std::string> text;  // unset when neither flag nor env var is given
  std::string source;               // "--flag" or "ENV_VAR", for messages
  StatusOr<int64_t> Number(int64_t max, int64_t fallback) const;
  std::string Text(const std::string& fallback) const { return text.value_or(fallback); }
};

// Flags win over env. Empty env values count as unset.
ConfigValue Pick(const std::optional<std::string>& flag, const EnvMap& env, const std::string& var,
                 const std::string& flag_name);

// The log level from `flag` (named --log-level) or else env LOG_LEVEL; info when neither is set.
// A bad value is INVALID_ARGUMENT naming where it came from (see ParseLogLevel in common/log.h).
StatusOr<spdlog::level::level_enum> PickLogLevel(const std::optional<std::string>& flag,
                                                 const EnvMap& env);

// Parses `args` (argv without argv[0]) with `app`. Returns true when --help or --version was
// printed (the caller exits 0); INVALID_ARGUMENT naming the problem for a bad command line.
StatusOr<bool> ParseCommandLine(CLI::App& app, const std::vector<std::string>& args,
                                std::string_view version);

// Reads a secret file (e.g. a mounted Secret): trimmed, non-empty, at most 4 KiB.
StatusOr<std::string> ReadSecretFile(const std::string& path, const std::string& source);

}  // namespace lm::app
