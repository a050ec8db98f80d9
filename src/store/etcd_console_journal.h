// EtcdConsoleJournal: the operator console's durable state (issue 17) in etcd, shared by every
// tokenmgr replica on one etcd (STORE=etcd): the event history with one numbering for all
// replicas, and the admin marks (cordoned nodes, disabled licenses). Not thread-safe: one
// io_context thread, like the etcd lock store. It owns its EtcdApi (a watch of its own).
//
//   auto j = EtcdConsoleJournal::Open(io, time, {.endpoints = {"http://etcd:2379"}},
//                                     {.prefix = "/tokenmgr/", .limits = limits});
//   console::Console console(time, options, **j);  // attaches itself as the sink
//   (*j)->Start();  // reads what etcd holds, passes it to the console, then watches
//
// Keys under <prefix>console/ (docs/architecture.md, "Console state on etcd"):
//   seq                 the last seq handed out (decimal). Never deleted.
//   events/<seq>        one event (console::ToJson(Event)), seq zero-padded to 20 digits so
//                       key order is seq order.
//   cordon/<node>       a cordoned node: {"actor": "...", "at_ms": n}; deleted by uncordon.
//   disable/<license>   a disabled license: the same form; deleted by enable.
//   nodes/<node>        a node's row as the replica its agent reports to last wrote it:
//                       {"pod","state","license","version","since_ms","seen_ms"}.
// Contract:
// - AppendEvents numbers events in one txn: compare seq's mod revision, put seq and the events.
//   A failed compare reads seq in the same txn (failure branch) and tries again, at most
//   max_attempts times, then UNAVAILABLE. Calls within event_flush of the first one waiting,
//   and calls queued while a txn is in flight, go together in the next txn (at most
//   kMaxEventsPerTxn events; a single call with more is INVALID_ARGUMENT).
//   So seqs are unique and gap-free across replicas and restarts.
// - The sink gets events in ascending seq, each once: from the start-up read, the watch, and a
//   successful append of this replica (read-your-writes). A seq above a missing lower one is
//   held back until the lower one arrives; if the gap stays for hold_back, everything is read
//   again (a read is authoritative: a seq it lacks below the counter was deleted).
// - Marks are applied in revision order: each mark key's last applied revision is kept, so a
//   stale answer (a txn's, or a read's) never overwrites a newer value.
// - Start-up and every resync (watch closed, start revision compacted, stuck gap): one read-only
//   txn for seq and the marks (revision R), then the newest limits.max_events events in pages of
//   kPageEvents keys, then a watch from R + 1.
// - Retention: every retention_interval, and after an append that leaves kRetentionSlack events
//   beyond limits.max_events, the replica deletes in one range-delete op every event below the
//   newest max_events and every event older than limits.max_age (oldest first: never one above
//   a younger one). Idempotent; deletes seen from other replicas move the cut.
// - Errors: etcd unreachable or without leader -> UNAVAILABLE "etcd ... not stored, retry"; the
//   NOSPACE alarm -> UNAVAILABLE naming the quota. Nothing half-applied: one txn per call.
// - A key under console/ that is not ours (undecodable key or value) is skipped, logged once
//   per key and revision, and counted (skipped_keys()).
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/time_system.h"
#include "console/console.h"
#include "store/etcd_api.h"
#include "store/etcd_client.h"

namespace lm::store {

struct EtcdConsoleOptions {
  std::string prefix = "/tokenmgr/";  // keys under <prefix>console/
  console::Limits limits;             // what etcd keeps (the console's own limits)
  std::chrono::milliseconds retention_interval{30000};
  std::chrono::milliseconds hold_back{2000};  // a seq gap older than this: read again
  std::chrono::milliseconds resync_delay{
      500};              // after a closed watch; doubled up to 5 s per failed read
  int max_attempts = 8;  // numbering txns for one batch before UNAVAILABLE
  // Node rows: a row unchanged since written is refreshed after gone_after / 3; a key not
  // refreshed for node_retention is deleted (the NodeTable drops such nodes too).
  std::chrono::seconds gone_after{60};
  std::chrono::seconds node_retention{std::chrono::hours(24)};
  std::chrono::milliseconds node_flush{200};  // rows noted within this go in one txn
  std::chrono::milliseconds event_flush{10};  // events appended within this too (0: at once)
};

class EtcdConsoleJournal final : public console::ConsoleJournal {
 public:
  static constexpr size_t kMaxEventsPerTxn = 127;  // + the counter = etcd's 128 ops per txn
  static constexpr uint64_t kPageEvents = 1000;    // events per start-up read
  static constexpr size_t kMaxOpsPerTxn = 128;     // etcd's default --max-txn-ops
  // An append that leaves this many events beyond max_events in etcd trims at once.
  static constexpr uint64_t kRetentionSlack = 128;

  // Fails only on bad options (endpoints, TLS files).
  static StatusOr<std::unique_ptr<EtcdConsoleJournal>> Open(boost::asio::io_context& io,
                                                            TimeSystem& time,
                                                            EtcdClientOptions client,
                                                            EtcdConsoleOptions options);
  EtcdConsoleJournal(TimeSystem& time, boost::asio::any_io_executor executor,
                     std::unique_ptr<EtcdApi> etcd, EtcdConsoleOptions options);
  ~EtcdConsoleJournal() override;

  // Reads what etcd holds (passing it to the sink), then watches. Attach the sink first.
  void Start();
  // Fails queued appends, ends the watch and the timers, shuts the EtcdApi down. Idempotent.
  void Stop();

  void AppendEvents(std::vector<console::Event> events, Done done) override;
  void SetMark(console::MarkKind kind, const std::string& name,
               std::optional<console::AdminMark> mark, Done done) override;
  // Writes the row (batched, at most kMaxOpsPerTxn puts a txn) when its state, license, pod or
  // version changed since last written, or when it was written gone_after / 3 ago.
  void NoteNode(const console::NodeRow& row) override;
  // Receives every node row stored (by any replica), e.g. Console::MergeNode.
  void SetNodeSink(std::function<void(const console::NodeRow&)> sink) {
    node_sink_ = std::move(sink);
  }

  bool synced() const { return synced_; }           // the watch is up after a full read
  uint64_t last_seq() const { return delivered_; }  // the highest seq passed to the sink
  size_t skipped_keys() const { return skipped_; }
  // Prometheus text: tokenmgr_console_journal_synced, _last_seq, _skipped_keys, _deletes.
  std::string RenderMetrics() const;

  // The key of event `seq` (exposed for tests and tools).
  std::string EventKey(uint64_t seq) const;

 private:
  struct Append {
    std::vector<console::Event> events;
    Done done;
  };

  // ---- reading ----
  void Resync();
  void OnHead(StatusOr<TxnResponse> r);
  void ReadPage(uint64_t from);
  void OnPage(uint64_t from, uint64_t to, StatusOr<RangeResponse> r);
  void StartWatch();
  void OnWatch(const WatchResponse& w);
  void ReadFailed(const std::string& why);
  void Apply(const KeyValue& kv, bool deleted);
  void ApplyMarkKv(const KeyValue& kv, bool deleted);
  void ApplyMark(const std::string& key, int64_t revision, std::optional<console::AdminMark> m);
  void NoteCounter(const KeyValue& kv);
  void Skip(const KeyValue& kv, const std::string& why);

  // ---- events to the sink ----
  void Offer(console::Event e);
  // Everything below `below` was read: held-back events under it go out, gaps are deletions.
  void Settle(uint64_t below);
  void Flush();

  // ---- writing ----
  void Pump();
  void Send(std::shared_ptr<std::vector<Append>> batch, int attempt);
  void OnAppendTxn(std::shared_ptr<std::vector<Append>> batch, int attempt,
                   StatusOr<TxnResponse> r);
  Status NotStored(const Status& s, const std::string& what) const;

  // ---- node rows ----
  void ApplyNodeKv(const KeyValue& kv, bool deleted);
  void FlushNodes();

  // ---- retention ----
  void CheckRetention();  // the timer: Trim() and re-arm
  void Trim();            // one range delete when the cut moved

  TimeSystem& time_;
  std::unique_ptr<EtcdApi> etcd_;
  EtcdConsoleOptions options_;
  std::string root_, seq_key_, events_prefix_, cordon_prefix_, disable_prefix_, nodes_prefix_;
  TimerPtr resync_timer_, hold_timer_, retention_timer_, node_timer_, event_timer_;

  // Numbering: the counter as last seen (value, mod revision).
  uint64_t counter_ = 0;
  int64_t counter_mod_ = 0;
  // Events: the highest seq given to the sink, and those held back above a gap.
  uint64_t delivered_ = 0;
  std::map<uint64_t, console::Event> pending_;
  std::vector<console::Event> out_;  // collected for one ApplyEvents call
  // Event keys known to be in etcd: seq -> time (ms), for retention.
  std::map<uint64_t, int64_t> stored_;
  uint64_t deleted_below_ = 0;  // every event below this is deleted (by us or another replica)
  uint64_t deletes_ = 0;        // range deletes sent
  bool trimming_ = false;       // one in flight
  // Marks: key -> (revision of the value applied, present).
  std::map<std::string, std::pair<int64_t, bool>> marks_;

  // Reading state.
  int64_t read_revision_ = 0;  // R of the last head read
  uint64_t read_counter_ = 0;  // the counter at R
  bool reading_ = false, synced_ = false, stopped_ = false;
  int failed_reads_ = 0;  // since the last sync (backoff, and fewer log lines)

  std::deque<Append> queue_;
  size_t queued_events_ = 0;  // in queue_
  bool in_flight_ = false;

  // Node rows: what this replica wrote last (and when), what waits to be written, and when
  // each node key in etcd was last seen (ms), for its retention.
  struct Written {
    console::NodeRow row;
    SteadyTime at{};
  };
  std::map<std::string, Written> written_;
  std::map<std::string, console::NodeRow> dirty_;
  std::map<std::string, int64_t> node_seen_ms_;
  bool nodes_in_flight_ = false;
  std::function<void(const console::NodeRow&)> node_sink_;

  size_t skipped_ = 0;
  std::set<std::pair<std::string, int64_t>> logged_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lm::store
