#include "app/cli_config.h"

#include "client/tokenmgr_client.h"
#include "common/real_time.h"

namespace lm::app {
namespace {

// cli::Api on the HTTP client; a transport error names the URL it tried.
class HttpApi final : public cli::Api {
 public:
  HttpApi(client::HttpTokenmgrClient& client, std::string url)
      : client_(client), url_(std::move(url)) {}
  StatusOr<client::ApiReply> Call(const std::string& method, const std::string& path,
                                  const std::string& body) override {
    auto r = client_.Api(method, path, body);
    if (!r.ok()) return Unavailable(url_ + ": " + r.status().message());
    return r;
  }

 private:
  client::HttpTokenmgrClient& client_;
  std::string url_;
};

}  // namespace

StatusOr<CliConfig> ResolveCliConfig(const cli::Command& command, const EnvMap& env) {
  CliConfig c;
  ConfigValue url = Pick(command.url, env, "TOKENMGR_URL", "--url");
  if (url.text) {
    c.url = *url.text;
  } else {
    ConfigValue port = Pick(std::nullopt, env, "LISTENPORT", "--listen-port");
    auto p = port.Number(65535, 8080);
    if (!p.ok()) return p.status();
    c.url = "http://127.0.0.1:" + std::to_string(*p);
  }
  if (auto parsed = client::ParseHttpUrl(c.url); !parsed.ok()) {
    return InvalidArgument(url.source + ": " + parsed.status().message());
  }
  ConfigValue token = Pick(command.token_file, env, "AUTH_TOKEN_FILE", "--token-file");
  if (token.text) {
    auto secret = ReadSecretFile(*token.text, token.source);
    if (!secret.ok()) return secret.status();
    c.token = *secret;
  }
  return c;
}

int RunCli(const std::vector<std::string>& words, const EnvMap& env, std::ostream& out,
           std::ostream& err) {
  auto command = cli::ParseCommand(words);
  if (!command.ok()) return err << "tokenmgr: " << command.status().message() << "\n", cli::kUsage;
  auto config = ResolveCliConfig(*command, env);
  if (!config.ok()) return err << "tokenmgr: " << config.status().message() << "\n", cli::kUsage;
  auto client = client::HttpTokenmgrClient::Create(config->url, config->token);
  if (!client.ok()) return err << "tokenmgr: " << client.status().message() << "\n", cli::kUsage;
  HttpApi api(**client, config->url);
  RealSleeper sleeper;
  return cli::Run(*command, api, RealTimeSystem::Get(), sleeper, out, err);
}

}  // namespace lm::app
