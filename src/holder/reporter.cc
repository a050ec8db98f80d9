#include "holder/reporter.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/random.h"

namespace lm::holder {

std::chrono::milliseconds ReporterOptions::Timeout() const {
  return std::min<std::chrono::milliseconds>(
      std::chrono::seconds(2),
      std::chrono::duration_cast<std::chrono::milliseconds>(heartbeat) / 4);
}

Reporter::Reporter(ReporterOptions options, client::TokenmgrClient& client, const Clock& clock,
                   EventSpool* spool)
    : options_(std::move(options)), client_(client), clock_(clock), spool_(spool) {
  options_.max_buffered = std::max<size_t>(options_.max_buffered, 1);
  options_.max_per_report = std::max<size_t>(options_.max_per_report, 1);
  if (options_.enabled) LoadSpool();
}

void Reporter::LoadSpool() {
  if (spool_) {
    StatusOr<SpoolContents> c = spool_->Load();
    if (c.ok()) {
      origin_ = c->origin;
      next_seq_ = c->next_seq;
      for (console::Event& e : c->events) {
        e.node = options_.node;  // the node is the reporter's, whatever the file says
        events_.push_back(std::move(e));
      }
      while (events_.size() > options_.max_buffered) {
        events_.pop_front();
        ++stats_.dropped;
      }
      if (!events_.empty()) {
        spdlog::info("{} events for tokenmgr's history kept from this agent's last run",
                     events_.size());
      }
      return;
    }
    if (c.status().code() == StatusCode::kFailedPrecondition) {
      spdlog::warn("{}", c.status().message());  // another agent's spool: left alone
      spool_logged_ = true;                      // Persist would only say it again
    } else if (c.status().code() != StatusCode::kNotFound) {
      spdlog::warn("{}; starting a new one (events it held are lost)", c.status().message());
    }
  }
  while (origin_ == 0) origin_ = RandomU64();
  next_seq_ = 1;
}

void Reporter::Persist() {
  if (!spool_) return;
  SpoolContents c{origin_, next_seq_, {events_.begin(), events_.end()}};
  Status s = spool_->Save(c);
  if (s.ok()) {
    spool_logged_ = false;
  } else if (!spool_logged_) {
    spdlog::warn(
        "cannot keep events for tokenmgr's history across restarts ({}); they are kept in "
        "memory until tokenmgr stores them",
        s.message());
    spool_logged_ = true;
  }
}

void Reporter::Record(console::EventKind kind, const std::string& license, uint64_t token,
                      const std::string& detail) {
  if (!options_.enabled) return;
  if (events_.size() >= options_.max_buffered) {
    events_.pop_front();
    ++stats_.dropped;
    if (!drop_warned_) {
      spdlog::warn(
          "{} events for tokenmgr's history are buffered (it does not store them: see "
          "earlier messages); dropping the oldest (license_holder_report_events_dropped_"
          "total counts them)",
          options_.max_buffered);
      drop_warned_ = true;
    }
  }
  console::Event e;
  e.time = clock_.WallNow();
  e.kind = kind;
  e.license = license;
  e.node = options_.node;
  e.token = token;
  e.detail = detail;
  e.origin = origin_;
  e.origin_seq = next_seq_++;
  events_.push_back(std::move(e));
  Persist();
}

bool Reporter::Disabled(const std::string& license) const {
  const auto& d = directives_.disabled;
  return std::find(d.begin(), d.end(), license) != d.end();
}

ReporterStats Reporter::stats() const {
  ReporterStats s = stats_;
  s.buffered = events_.size();
  s.paused = paused_until_ && clock_.Now() < *paused_until_;
  return s;
}

void Reporter::Drop(size_t n) {
  n = std::min(n, events_.size());
  if (n == 0) return;
  events_.erase(events_.begin(), events_.begin() + static_cast<std::ptrdiff_t>(n));
  Persist();
}

bool Reporter::MaybeSend(console::NodeState state, const std::string& license) {
  if (!options_.enabled) return false;
  SteadyTime now = clock_.Now();
  if (paused_until_ && now < *paused_until_) return false;
  // In milliseconds: heartbeat / 2 in whole seconds is 0 for a 1 s heartbeat.
  const auto half = std::chrono::duration_cast<std::chrono::milliseconds>(options_.heartbeat) / 2;
  // A new state or license is news (a claim just made, a withdrawal): sent at once.
  const bool changed = state != last_state_ || license != last_license_;
  if (last_attempt_ && now - *last_attempt_ < half && !changed) return false;
  last_attempt_ = now;
  last_state_ = state;
  last_license_ = license;
  return Send(state, license, options_.max_per_report);
}

bool Reporter::Refresh(console::NodeState state, const std::string& license) {
  if (!options_.enabled) return false;
  if (paused_until_ && clock_.Now() < *paused_until_) return false;
  return Send(state, license, 0);
}

bool Reporter::Send(console::NodeState state, const std::string& license, size_t max_events) {
  SteadyTime now = clock_.Now();

  console::AgentReport report;
  report.report.node = options_.node;
  report.report.pod = options_.pod;
  report.report.state = state;
  report.report.license = license;
  report.report.version = options_.version;
  size_t n = std::min(events_.size(), max_events);
  report.events.assign(events_.begin(), events_.begin() + static_cast<std::ptrdiff_t>(n));

  auto reply = client_.Report(options_.node, report, options_.Timeout());
  if (reply.ok()) {
    Drop(std::min(reply->acknowledged, n));
    directives_ = std::move(*reply);
    ++stats_.reports;
    if (failure_logged_ || auth_logged_ || paused_until_) {
      spdlog::info("node reports reach tokenmgr again");
    }
    paused_until_.reset();
    failure_logged_ = auth_logged_ = false;
    drop_warned_ = false;
    return true;
  }
  ++stats_.failures;
  const Status& s = reply.status();
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
      // Resending the same events would be refused again: drop them.
      Drop(n);
      stats_.refused += n;
      if (!refusal_logged_) {
        spdlog::warn("{}; dropped the {} events of that report", s.message(), n);
        refusal_logged_ = true;
      }
      break;
    case StatusCode::kNotFound:
      paused_until_ = now + options_.not_found_pause;
      if (!failure_logged_) {
        spdlog::info(
            "{}: not reporting this node's state for {}s", s.message(),
            std::chrono::duration_cast<std::chrono::seconds>(options_.not_found_pause).count());
        failure_logged_ = true;
      }
      break;
    case StatusCode::kUnauthenticated:
      if (!auth_logged_) {
        spdlog::warn("{} (the license is unaffected; events are kept)", s.message());
        auth_logged_ = true;
      }
      break;
    default:
      if (!failure_logged_) {
        spdlog::warn(
            "node report: {} (the license is unaffected; events and the last "
            "directives are kept)",
            s.message());
        failure_logged_ = true;
      }
      break;
  }
  return false;
}

}  // namespace lm::holder
