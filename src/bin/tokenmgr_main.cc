// tokenmgr: flags -> config -> wiring -> run. All logic lives in the libraries.
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "app/cli_config.h"
#include "app/state_command.h"
#include "app/tokenmgr_config.h"
#include "common/log.h"
#include "common/real_time.h"
#include "common/stop_signals.h"
#include "common/strings.h"
#include "console/console.h"
#include "console/file_journal.h"
#include "http/router.h"
#include "http/server.h"
#include "license/fs.h"
#include "license/layout.h"
#include "store/embedded_lock_service.h"
#include "store/etcd_console_journal.h"
#include "store/etcd_lock_service.h"
#include "tokenmgr/console_routes.h"
#include "tokenmgr/lock_api.h"
#include "tokenmgr/token_service.h"
#include "tokenmgr/ui.h"

int main(int argc, char** argv) {
  using namespace lm;
  TimeSystem& time = RealTimeSystem::Get();
  if (app::IsStateCommand(argc, argv))
    return app::RunStateCommand(argc, argv, std::cout, std::cerr);
  // The operator's commands (`tokenmgr nodes`, `tokenmgr cordon NODE`, ...): a client of the API.
  if (auto line = cli::AsCommandLine({argv + 1, argv + argc})) {
    return app::RunCli(*line, app::EnvFromEnviron(), std::cout, std::cerr);
  }
  auto config = app::ParseTokenmgrConfig(argc, argv, app::EnvFromEnviron());
  if (!config.ok()) {
    std::cerr << "tokenmgr: " << config.status().message() << "\n";
    return 2;
  }
  if (config->help_shown) return 0;
  // SIGTERM/SIGINT/SIGHUP are blocked from here on, before the log flusher thread starts, and
  // read from a signalfd once the server is up: one sent as soon as the port file appears waits in
  // the kernel and still means a clean stop with exit 0 (common/stop_signals.h).
  BlockStopSignals();
  // Buffered: grant and release lines would otherwise cost a write(2) each on the hot path.
  if (Status s = InitLogging(config->log_format, LogFlush::kBuffered, config->log_level); !s.ok()) {
    std::cerr << "tokenmgr: " << s.message() << "\n";
    return 2;
  }

  // One thread runs every socket, timer and signal, so Asio's per-descriptor locks are skipped.
  boost::asio::io_context io(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO);
  StatusOr<std::unique_ptr<lock::LockService>> lock = Internal("no store");
  store::EtcdLockService* etcd_store = nullptr;  // for its /metrics lines
  // How the lock store and the console journal reach etcd (STORE=etcd).
  const store::EtcdClientOptions etcd_client{
      .endpoints = config->etcd_endpoints,
      .timeout = std::chrono::milliseconds(config->etcd_timeout_ms),
      .tls = {.ca_file = config->etcd_cacert,
              .cert_file = config->etcd_cert,
              .key_file = config->etcd_key},
      .protocol = config->etcd_protocol == "json" ? store::EtcdProtocol::kJson
                                                  : store::EtcdProtocol::kGrpc};
  if (config->store == "etcd") {
    auto etcd = store::EtcdLockService::Open(
        io, time, config->lock,
        {.endpoints = etcd_client.endpoints,
         .tls = etcd_client.tls,
         .protocol = etcd_client.protocol,
         .prefix = config->etcd_prefix,
         .timeout = etcd_client.timeout,
         .queue_stall = std::chrono::milliseconds(config->etcd_queue_stall_ms),
         .maintenance = {
             .compact = config->etcd_compact,
             .compact_interval = std::chrono::seconds(config->etcd_compact_interval_s)}});
    if (etcd.ok()) etcd_store = etcd->get();
    if (etcd.ok()) lock = std::unique_ptr<lock::LockService>(std::move(*etcd));
    else lock = etcd.status();
  } else {
    auto embedded = store::EmbeddedLockService::Open(io, time, config->lock,
                                                     config->state_file);
    if (embedded.ok()) lock = std::unique_ptr<lock::LockService>(std::move(*embedded));
    else lock = embedded.status();
  }
  if (!lock.ok()) {
    spdlog::critical("cannot start: {}", lock.status().ToString());
    return 1;
  }
  tokenmgr::LockApi lock_api(**lock, time, {.auth_token = config->auth_token});
  http::Router router;
  tokenmgr::TokenService api(router, lock_api, **lock);
  http::HttpServer server(io, time, config->server, router);
  api.SetServerStats(&server.stats());
  if (etcd_store) api.AddMetrics([etcd_store] { return etcd_store->StoreMetrics(); });
  license::PosixFilesystem fs;

  // The operator's console (issue 17): nodes, history, cordons and disabled licenses.
  console::ConsoleOptions console_options{
      .events = {.max_events = config->events_max, .max_age = config->events_max_age},
      .nodes = {.gone_after = config->claim_ttl, .retention = config->node_retention}};
  if (!config->pool_dir.empty()) {
    // A license is a visible directory of the pool (license/layout.h); without a pool, any name.
    console_options.license_exists = [&fs, pool = config->pool_dir](const std::string& name) {
      if (license::IsHiddenName(name)) return false;
      auto info = fs.Stat(license::LicenseDir(pool, name));
      return info.ok() && info->type == license::FileType::kDir;
    };
  }
  std::unique_ptr<console::ConsoleJournal> journal;
  console::FileJournal* file_journal = nullptr;
  store::EtcdConsoleJournal* etcd_journal = nullptr;  // started once its sinks are attached
  if (config->store == "etcd") {
    // Events and marks in etcd under <prefix>console/, shared by every replica.
    auto opened = store::EtcdConsoleJournal::Open(
        io, time, etcd_client,
        {.prefix = config->etcd_prefix,
         .limits = console_options.events,
         .gone_after = console_options.nodes.gone_after,
         .node_retention = console_options.nodes.retention});
    if (!opened.ok()) {
      spdlog::critical("cannot start: console journal on etcd: {}", opened.status().ToString());
      return 1;
    }
    etcd_journal = opened->get();
    journal = std::move(*opened);
  } else if (!config->state_file.empty()) {
    std::string dir = std::filesystem::path(config->state_file).parent_path().string();
    auto opened =
        console::FileJournal::Open(dir.empty() ? "." : dir, console_options.events, time);
    if (!opened.ok()) {
      spdlog::critical("cannot start: console history in {}: {}", dir.empty() ? "." : dir,
                       opened.status().ToString());
      return 1;
    }
    file_journal = opened->get();
    journal = std::move(*opened);
  } else {
    journal = std::make_unique<console::MemoryJournal>();
  }
  console::Console console(time, console_options, *journal);
  if (file_journal) {
    if (file_journal->skipped_lines() > 0) {
      spdlog::warn("console history: skipped {} unreadable lines", file_journal->skipped_lines());
    }
    console.Restore(file_journal->TakeEvents(), file_journal->last_seq(), file_journal->admin());
  }
  // Lease expiries go into the history (the holder as the node when it is a valid name).
  (*lock)->OnLeaseExpired([&console](const lock::ExpiredLease& lease) {
    console::Event e;
    e.kind = console::EventKind::kLeaseExpiry;
    if (ValidateLabel(lease.holder, "holder").ok()) e.node = lease.holder;
    e.token = lease.token;
    e.detail = "lease expired";
    console.Record({std::move(e)}, [](Status s) {
      if (!s.ok()) spdlog::warn("console history: lease expiry not recorded: {}", s.ToString());
    });
  });
  tokenmgr::ConsoleRoutes console_routes(router, console, lock_api, time, {});
  api.AddMetrics([&console_routes] { return console_routes.RenderMetrics(); });
  if (etcd_journal) {
    // Nodes reporting to other replicas are listed here too.
    etcd_journal->SetNodeSink([&console](const console::NodeRow& row) { console.MergeNode(row); });
    etcd_journal->Start();
    api.AddMetrics([etcd_journal] { return etcd_journal->RenderMetrics(); });
  }

  tokenmgr::WebUi ui(io, router, lock_api, fs, time,
                     {.pool_dir = config->pool_dir,
                      .claim_ttl = config->claim_ttl,
                      .console = &console});
  api.AddMetrics([&ui] { return ui.RenderMetrics(); });
  auto port = server.Listen(config->bind_address, config->port);
  if (!port.ok()) {
    spdlog::critical("cannot start: {}", port.status().ToString());
    return 1;
  }
  if (!config->port_file.empty()) {
    std::ofstream out(config->port_file);
    out << *port << "\n";
    out.close();
    if (!out) {
      spdlog::critical("cannot start: cannot write port file {}", config->port_file);
      return 1;
    }
  }
  spdlog::info("tokenmgr listening on {}:{} (state: {}, default ttl {}s, auth {})",
               config->bind_address, *port,
               config->store == "etcd" ? "etcd " + config->etcd_prefix
               : config->state_file.empty() ? "memory only" : config->state_file,
               config->lock.default_ttl.count(), config->auth_token ? "on" : "off");

  auto signals = StopSignalReader::Open(io, [&](int sig) {
    spdlog::info("signal {}: stopping (answering in-flight requests)", sig);
    server.Stop(std::chrono::milliseconds(1500));
    (*lock)->Shutdown();
    if (etcd_journal) etcd_journal->Stop();
    ui.Stop();
  });
  if (!signals.ok()) {
    spdlog::critical("cannot start: {}", signals.status().ToString());
    return 1;
  }
  io.run();
  spdlog::info("tokenmgr stopped");
  ShutdownLogging();
  return 0;
}
