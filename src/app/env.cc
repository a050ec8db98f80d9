#include "app/env.h"

#include <CLI/CLI.hpp>
#include <iostream>

#include "common/atomic_file.h"
#include "common/log.h"
#include "common/strings.h"

extern char** environ;

namespace lm::app {

EnvMap EnvFromEnviron() {
  EnvMap env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return env;
}

ConfigValue Pick(const std::optional<std::string>& flag, const EnvMap& env, const std::string& var,
                 const std::string& flag_name) {
  if (flag) return {flag, flag_name};
  auto it = env.find(var);
  if (it != env.end() && !it->second.empty()) return {it->second, var};
  return {std::nullopt, var};
}

StatusOr<int64_t> ConfigValue::Number(int64_t max, int64_t fallback) const {
  if (!text) return fallback;
  auto v = ParseWholeNumber(Trim(*text), source, max);
  if (!v.ok()) return v.status();
  return *v;
}

StatusOr<spdlog::level::level_enum> PickLogLevel(const std::optional<std::string>& flag,
                                                 const EnvMap& env) {
  ConfigValue v = Pick(flag, env, "LOG_LEVEL", "--log-level");
  if (!v.text) return spdlog::level::info;
  return ParseLogLevel(*v.text, v.source);
}

StatusOr<bool> ParseCommandLine(CLI::App& app, const std::vector<std::string>& args,
                                std::string_view version) {
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 wants them reversed
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return true;
  } catch (const CLI::CallForVersion&) {
    std::cout << version << "\n";
    return true;
  } catch (const CLI::ParseError& e) {
    return InvalidArgument(std::string("command line: ") + e.what());
  }
  return false;
}

StatusOr<std::string> ReadSecretFile(const std::string& path, const std::string& source) {
  // Secrets are mounted as symlinks (token -> ..data/token -> ..2026_11_27_.../token).
  auto text = ReadSmallFile(path, 4096, Symlinks::kFollow);
  if (!text.ok()) return InvalidArgument(source + ": " + text.status().message());
  std::string secret(Trim(*text));
  if (secret.empty()) return InvalidArgument(source + ": " + path + " is empty");
  for (char c : secret) {
    if (c < 0x21 || c > 0x7e) {
      return InvalidArgument(source + ": token must be printable ASCII without spaces");
    }
  }
  return secret;
}

}  // namespace lm::app
