// Where `tokenmgr <command>` (src/cli) finds tokenmgr and its token: --url / TOKENMGR_URL (the
// agents' value "http://tokenmgr.bitfusion:8080/api/token" or the bare "http://host:port";
// default http://127.0.0.1:$LISTENPORT, else :8080, the local server as `kubectl exec` sees it),
// --token-file / AUTH_TOKEN_FILE (the file's content, trimmed). Thread-compatible.
//
//   if (cli::IsCommand(argv[1])) return RunCli(args, EnvFromEnviron(), std::cout, std::cerr);
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "app/env.h"
#include "cli/cli.h"
#include "common/status.h"

namespace lm::app {

struct CliConfig {
  std::string url;
  std::optional<std::string> token;
};

// INVALID_ARGUMENT naming the flag or variable (and the file, for the token).
StatusOr<CliConfig> ResolveCliConfig(const cli::Command& command, const EnvMap& env);

// Parses `words` (argv after "tokenmgr"), resolves the config, and runs the command against the
// HTTP API. Returns a cli::ExitCode: 2 for a bad command line, URL or token file; 5 when
// tokenmgr cannot be reached (the message names the URL).
int RunCli(const std::vector<std::string>& words, const EnvMap& env, std::ostream& out,
           std::ostream& err);

}  // namespace lm::app
