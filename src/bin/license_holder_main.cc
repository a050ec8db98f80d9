// license-holder: flags -> config -> wiring -> run. All logic lives in the libraries.
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstring>
#include <fstream>
#include <future>
#include <iostream>
#include <thread>

#include "common/real_time.h"
#include "app/holder_config.h"
#include "client/tokenmgr_client.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/process_metrics.h"
#include "common/stop_signals.h"
#include "common/strings.h"
#include "holder/agent.h"
#include "holder/release.h"
#include "http/router.h"
#include "http/server.h"
#include "license/fs.h"

namespace {

int RunAgent(const lm::app::HolderConfig& config, lm::license::Filesystem& fs,
             lm::client::TokenmgrClient& client) {
  using namespace lm;
  RealSleeper sleeper;
  holder::Agent agent(config.agent, fs, client, RealTimeSystem::Get(), sleeper);

  boost::asio::io_context io(1);
  http::Router router;
  router.Get("/healthz", [&] {
    return agent.Healthy() ? http::JsonResponse(200, R"({"status": "ok"})")
                           : http::ErrorResponse(503, "agent loop stalled");
  });
  router.Get("/readyz", [&] {
    holder::AgentSnapshot s = agent.Snapshot();
    if (s.ready) return http::JsonResponse(200, "{\"status\": \"ready\", \"license\": \"" + JsonEscape(s.license) + "\"}");
    std::string phase = s.cordoned ? "cordoned" : std::string(holder::PhaseName(s.phase));
    return http::ErrorResponse(503, "not ready (" + phase + "): " + s.last_error);
  });
  router.Get("/metrics", [&] {
    http::Response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = agent.RenderMetrics() + RenderProcessMetrics("license_holder");
    return r;
  });
  http::ServerOptions options;
  options.server_name = "license-holder";
  options.max_connections = 64;
  options.listen_setting = "HEALTH_PORT/--health-port, HEALTH_BIND/--health-bind";
  http::HttpServer server(io, RealTimeSystem::Get(), options, router);
  auto port = server.Listen(config.health_bind, config.health_port);
  if (!port.ok()) {
    spdlog::critical("cannot start: {}", port.status().ToString());
    return 1;
  }
  if (!config.port_file.empty()) std::ofstream(config.port_file) << *port << "\n";
  spdlog::info("license-holder for node '{}' (pod '{}'): pool {}, host dir {}, tokenmgr {}, "
               "heartbeat {}s, claim ttl {}s, health on {}:{}, reporting to the console {}",
               config.agent.node, config.agent.pod, config.agent.pool_dir, config.agent.host_dir,
               config.tokenmgr_url, config.agent.heartbeat.count(), config.agent.claim_ttl.count(),
               config.health_bind, *port, config.agent.report ? "on" : "off");

  std::thread io_thread([&] { io.run(); });
  agent.StartFenceGuard();  // withdraws on time even while the agent waits for a hung pool
  auto agent_done = std::async(std::launch::async, [&] { agent.Run(); });

  sigset_t set = StopSignals();
  int sig = 0;
  while (true) {
    // Also wake if the agent loop ended on its own (it should not).
    timespec ts{0, 200 * 1000 * 1000};
    int r = sigtimedwait(&set, nullptr, &ts);
    if (r > 0) {
      sig = r;
      break;
    }
    if (agent_done.wait_for(std::chrono::seconds(0)) == std::future_status::ready) break;
  }
  spdlog::info("signal {} ({}): stopping", sig, sig > 0 ? strsignal(sig) : "agent loop ended");
  sleeper.Stop();
  client.Abort();
  if (agent_done.wait_for(std::chrono::milliseconds(1500)) != std::future_status::ready) {
    spdlog::error("agent loop did not stop in time (storage hung?); exiting anyway");
    std::quick_exit(0);
  }
  agent.OnExit();
  boost::asio::post(io, [&] { server.Stop(std::chrono::milliseconds(100)); });
  io.stop();
  io_thread.join();
  spdlog::info("license-holder stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lm;
  // Signals are taken synchronously by the main thread; block them before threads start.
  BlockStopSignals();

  auto config = app::ParseHolderConfig(argc, argv, app::EnvFromEnviron());
  if (!config.ok()) {
    std::cerr << "license-holder: " << config.status().message() << "\n";
    return 2;
  }
  if (config->command == app::HolderCommand::kHelp) return 0;
  auto log_level = app::PickLogLevel(std::nullopt, app::EnvFromEnviron());
  if (!log_level.ok()) {
    std::cerr << "license-holder: " << log_level.status().message() << "\n";
    return 2;
  }
  if (Status s = InitLogging(config->log_format, LogFlush::kEachLine, *log_level); !s.ok()) {
    std::cerr << "license-holder: " << s.message() << "\n";
    return 2;
  }
  auto client = client::HttpTokenmgrClient::Create(config->tokenmgr_url, config->auth_token);
  if (!client.ok()) {
    std::cerr << "license-holder: " << client.status().message() << "\n";
    return 2;
  }
  license::PosixFilesystem fs;
  if (config->command == app::HolderCommand::kRelease) {
    auto result = holder::ReleaseNode(config->agent, fs, **client, RealTimeSystem::Get());
    holder::ReleaseOutcome outcome = holder::DescribeRelease(result, config->agent);
    (outcome.exit_code == holder::kReleaseOk ? std::cout : std::cerr) << outcome.message << "\n";
    return outcome.exit_code;
  }
  return RunAgent(*config, fs, **client);
}
