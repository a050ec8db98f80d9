// license-holder's configuration from flags and env (flags win), compatible with the seed's
// ConfigMap. Every error names the flag or variable. Thread-compatible.
//
//   StatusOr<HolderConfig> c = ParseHolderConfig(argc, argv, EnvFromEnviron());
//   if (c->command == HolderCommand::kRelease) ...
#pragma once

#include <optional>
#include <string>

#include "app/env.h"
#include "common/status.h"
#include "holder/agent.h"

namespace lm::app {

enum class HolderCommand { kRun, kRelease, kHelp };

struct HolderConfig {
  HolderCommand command = HolderCommand::kRun;
  holder::AgentConfig agent;
  std::string tokenmgr_url = "http://tokenmgr.bitfusion:8080/api/token";
  std::optional<std::string> auth_token;
  std::string health_bind = "0.0.0.0";
  uint16_t health_port = 8081;
  std::string port_file;
  std::string log_format = "text";
};

StatusOr<HolderConfig> ParseHolderConfig(int argc, const char* const* argv, const EnvMap& env);

}  // namespace lm::app
