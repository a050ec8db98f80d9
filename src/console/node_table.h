// NodeTable: every node that runs an agent, as the agents report it (issue 17's /api/nodes):
// its pod, state, license, since when it is in that state, when it was last heard from, its
// agent version. A pure container (no I/O, time from a Clock); thread-compatible.
//
//   NodeTable nodes(clock, {.gone_after = claim_ttl, .retention = std::chrono::hours(24)});
//   nodes.Report({.node = "n1", .pod = "flexdirect-x", .state = NodeState::kWaiting, ...});
//   std::vector<NodeRow> rows = nodes.List();  // waiting nodes first, longest wait first
//
// A node not heard from for `gone_after` is listed as `gone` (its last state kept apart); one
// not heard from for `retention` is dropped. A report never moves `since` back: a node that
// reports the same state again keeps the time it entered it.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace lm::console {

enum class NodeState { kHeld, kWaiting, kCordoned, kReleased, kDegraded, kGone };
// Every state, in declaration order (for totals and metrics that list each one).
inline constexpr NodeState kNodeStates[] = {NodeState::kHeld,     NodeState::kWaiting,
                                            NodeState::kCordoned, NodeState::kReleased,
                                            NodeState::kDegraded, NodeState::kGone};
std::string_view NodeStateName(NodeState s);
std::optional<NodeState> ParseNodeState(std::string_view name);

struct NodeReport {
  std::string node;
  std::string pod;
  NodeState state = NodeState::kWaiting;  // never kGone (only the table decides that)
  std::string license;                    // empty unless held (or degraded while holding)
  std::string version;
};

struct NodeRow {
  std::string node, pod, license, version;
  NodeState state = NodeState::kWaiting;
  NodeState last_reported = NodeState::kWaiting;  // what the agent said last (differs if gone)
  WallTime since{};      // in `state` since
  WallTime last_seen{};
};

struct NodeOptions {
  std::chrono::seconds gone_after{60};
  std::chrono::seconds retention{std::chrono::hours(24)};
  size_t max_nodes = 100000;  // a report for a new node beyond this is RESOURCE_EXHAUSTED
};

class NodeTable {
 public:
  NodeTable(const Clock& clock, NodeOptions options);

  // Validates the names (ValidateLabel; license may be empty) and the state.
  Status Report(const NodeReport& r);
  // Waiting nodes first (longest wait first), then the rest by node name. Drops expired ones.
  // A row another replica stored (etcd store: the node reports there). Taken when its
  // last_seen is newer than this table's for the node; gone and retention count from it.
  Status Merge(const NodeRow& row);
  std::vector<NodeRow> List();
  std::optional<NodeRow> Get(const std::string& node);
  size_t size() const { return nodes_.size(); }

 private:
  struct Entry {
    NodeReport report;
    WallTime since{};
    SteadyTime seen{};    // monotonic: gone/retention never depend on a stepped wall clock
    WallTime seen_wall{};
  };
  NodeRow Row(const Entry& e, SteadyTime now) const;
  void Expire(SteadyTime now);

  const Clock& clock_;
  NodeOptions options_;
  std::map<std::string, Entry> nodes_;
  SteadyTime oldest_seen_ = SteadyTime::max();  // <= every node's `seen` (Expire)
};

}  // namespace lm::console
