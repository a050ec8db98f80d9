#include "console/node_table.h"

#include <algorithm>

#include "common/strings.h"

namespace lm::console {
namespace {
constexpr std::string_view kStateNames[] = {"held",     "waiting",  "cordoned",
                                            "released", "degraded", "gone"};
}  // namespace

std::string_view NodeStateName(NodeState s) { return kStateNames[static_cast<size_t>(s)]; }

std::optional<NodeState> ParseNodeState(std::string_view name) {
  for (size_t i = 0; i < std::size(kStateNames); ++i) {
    if (kStateNames[i] == name) return static_cast<NodeState>(i);
  }
  return std::nullopt;
}

NodeTable::NodeTable(const Clock& clock, NodeOptions options)
    : clock_(clock), options_(options) {}

Status NodeTable::Report(const NodeReport& r) {
  if (Status s = ValidateLabel(r.node, "node"); !s.ok()) return s;
  if (Status s = ValidateLabel(r.pod, "pod"); !s.ok()) return s;
  if (!r.license.empty()) {
    if (Status s = ValidateLabel(r.license, "license"); !s.ok()) return s;
  }
  if (r.version.size() > 64) return InvalidArgument("version is longer than 64 bytes");
  if (r.state == NodeState::kGone) return InvalidArgument("an agent cannot report 'gone'");
  const SteadyTime now = clock_.Now();
  Expire(now);
  auto it = nodes_.find(r.node);
  if (it == nodes_.end()) {
    if (nodes_.size() >= options_.max_nodes) {
      return ResourceExhausted("more than " + std::to_string(options_.max_nodes) + " nodes");
    }
    it = nodes_.emplace(r.node, Entry{r, clock_.WallNow(), now, clock_.WallNow()}).first;
    oldest_seen_ = std::min(oldest_seen_, now);
    return Status::Ok();
  }
  Entry& e = it->second;
  const bool was_gone = now - e.seen >= options_.gone_after;
  if (was_gone || e.report.state != r.state || e.report.license != r.license) {
    e.since = clock_.WallNow();
  }
  e.report = r;
  e.seen = now;
  e.seen_wall = clock_.WallNow();
  return Status::Ok();
}

Status NodeTable::Merge(const NodeRow& row) {
  NodeReport r{row.node, row.pod, row.last_reported, row.license, row.version};
  if (Status s = ValidateLabel(r.node, "node"); !s.ok()) return s;
  auto it = nodes_.find(r.node);
  if (it != nodes_.end() && it->second.seen_wall >= row.last_seen) return Status::Ok();
  if (it == nodes_.end() && nodes_.size() >= options_.max_nodes) {
    return ResourceExhausted("more than " + std::to_string(options_.max_nodes) + " nodes");
  }
  const auto age = std::max(clock_.WallNow() - row.last_seen, WallTime::duration::zero());
  const SteadyTime seen = clock_.Now() - age;
  nodes_[row.node] = Entry{std::move(r), row.since, seen, row.last_seen};
  oldest_seen_ = std::min(oldest_seen_, seen);
  return Status::Ok();
}

NodeRow NodeTable::Row(const Entry& e, SteadyTime now) const {
  NodeRow row;
  row.node = e.report.node;
  row.pod = e.report.pod;
  row.license = e.report.license;
  row.version = e.report.version;
  row.last_reported = e.report.state;
  row.last_seen = e.seen_wall;
  if (now - e.seen >= options_.gone_after) {
    row.state = NodeState::kGone;
    row.since = e.seen_wall + options_.gone_after;
  } else {
    row.state = e.report.state;
    row.since = e.since;
  }
  return row;
}

void NodeTable::Expire(SteadyTime now) {
  // Every report calls this: a scan of every node each time made 2,000 holders reporting at
  // once cost tokenmgr O(N^2) (a quarter of its CPU). oldest_seen_ is at most the oldest
  // `seen` (reports only move a node's forward), so nothing can have expired before it does.
  if (nodes_.empty() || now - oldest_seen_ < options_.retention) return;
  std::erase_if(nodes_, [&](const auto& kv) { return now - kv.second.seen >= options_.retention; });
  oldest_seen_ = SteadyTime::max();
  for (const auto& [_, e] : nodes_) oldest_seen_ = std::min(oldest_seen_, e.seen);
}

std::vector<NodeRow> NodeTable::List() {
  const SteadyTime now = clock_.Now();
  Expire(now);
  std::vector<NodeRow> rows;
  rows.reserve(nodes_.size());
  for (const auto& [_, e] : nodes_) rows.push_back(Row(e, now));
  std::stable_sort(rows.begin(), rows.end(), [](const NodeRow& a, const NodeRow& b) {
    const bool wa = a.state == NodeState::kWaiting, wb = b.state == NodeState::kWaiting;
    if (wa != wb) return wa;
    if (wa) return a.since < b.since;
    return false;  // by name: the map's order, kept by stable_sort
  });
  return rows;
}

std::optional<NodeRow> NodeTable::Get(const std::string& node) {
  const SteadyTime now = clock_.Now();
  Expire(now);
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return std::nullopt;
  return Row(it->second, now);
}

}  // namespace lm::console
