#include "store/etcd_console_journal.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/metrics_text.h"
#include "common/strings.h"
#include "store/etcd_open.h"
#include "store/etcd_maintenance.h"

namespace lm::store {
namespace {

using console::AdminMark;
using console::Event;
using console::MarkKind;

std::optional<uint64_t> ParseDecimal(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::string MarkJson(const AdminMark& m) {
  return console::MarkToJson(m).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// One mark's value, checked as AdminStateFromJson checks each mark of a whole state.
StatusOr<AdminMark> ParseMark(const std::string& name, const std::string& value) {
  nlohmann::json v = nlohmann::json::parse(value, nullptr, false);
  if (v.is_discarded()) return InvalidArgument("not JSON");
  return console::AdminMarkFromJson(name, v, "cordoned");
}

}  // namespace

StatusOr<std::unique_ptr<EtcdConsoleJournal>> EtcdConsoleJournal::Open(boost::asio::io_context& io,
                                                                       TimeSystem& time,
                                                                       EtcdClientOptions client,
                                                                       EtcdConsoleOptions options) {
  if (options.prefix.empty()) return InvalidArgument("etcd key prefix must not be empty");
  auto etcd = OpenEtcdApi(io, std::move(client));
  if (!etcd.ok()) return etcd.status();
  return std::make_unique<EtcdConsoleJournal>(time, io.get_executor(), std::move(*etcd),
                                              std::move(options));
}

EtcdConsoleJournal::EtcdConsoleJournal(TimeSystem& time, boost::asio::any_io_executor executor,
                                       std::unique_ptr<EtcdApi> etcd, EtcdConsoleOptions options)
    : time_(time),
      etcd_(std::move(etcd)),
      options_(std::move(options)),
      root_(options_.prefix + "console/"),
      seq_key_(root_ + "seq"),
      events_prefix_(root_ + "events/"),
      cordon_prefix_(root_ + "cordon/"),
      disable_prefix_(root_ + "disable/"),
      nodes_prefix_(root_ + "nodes/") {
  resync_timer_ = time_.CreateTimer(executor, [this] { Resync(); });
  hold_timer_ = time_.CreateTimer(executor, [this] {
    if (!pending_.empty()) {
      spdlog::warn("console journal: seq {} has not arrived for {} ms; reading etcd again",
                   delivered_ + 1, options_.hold_back.count());
      Resync();
    }
  });
  retention_timer_ = time_.CreateTimer(executor, [this] { CheckRetention(); });
  node_timer_ = time_.CreateTimer(executor, [this] { FlushNodes(); });
  event_timer_ = time_.CreateTimer(executor, [this] { Pump(); });
}

EtcdConsoleJournal::~EtcdConsoleJournal() {
  // The sink (and what queued callbacks point to) may be gone already: nothing is called back.
  *alive_ = false;
  queue_.clear();
  Stop();
}

std::string EtcdConsoleJournal::EventKey(uint64_t seq) const {
  char digits[21];
  std::snprintf(digits, sizeof digits, "%020llu", static_cast<unsigned long long>(seq));
  return events_prefix_ + digits;
}

void EtcdConsoleJournal::Start() {
  Resync();
  retention_timer_->Arm(options_.retention_interval);
}

void EtcdConsoleJournal::Stop() {
  if (stopped_) return;
  stopped_ = true;
  synced_ = false;
  resync_timer_->Disarm();
  hold_timer_->Disarm();
  retention_timer_->Disarm();
  node_timer_->Disarm();
  event_timer_->Disarm();
  etcd_->CancelWatch();
  etcd_->Shutdown();
  std::deque<Append> queued = std::move(queue_);
  queued_events_ = 0;
  for (Append& a : queued) a.done(Unavailable("tokenmgr is shutting down: events not stored"));
}

// ---- reading: head, pages, watch ------------------------------------------------------------

void EtcdConsoleJournal::Resync() {
  if (stopped_ || reading_) return;
  reading_ = true;
  synced_ = false;
  hold_timer_->Disarm();
  etcd_->CancelWatch();
  // One read-only txn: the counter and every mark at one revision.
  Txn t;
  t.success = {Op::Range(seq_key_), Op::Range(cordon_prefix_, PrefixEnd(cordon_prefix_)),
               Op::Range(disable_prefix_, PrefixEnd(disable_prefix_)),
               Op::Range(nodes_prefix_, PrefixEnd(nodes_prefix_))};
  etcd_->DoTxn(std::move(t), [this, a = std::weak_ptr<bool>(alive_)](StatusOr<TxnResponse> r) {
    if (!a.expired()) OnHead(std::move(r));
  });
}

void EtcdConsoleJournal::ReadFailed(const std::string& why) {
  // Logged on the first failure and every 20th after, tried again after 0.5, 1, 2, 4, 5, 5 s...
  if (failed_reads_ % 20 == 0) {
    spdlog::warn("console journal: cannot read etcd ({}); trying again", Printable(why));
  }
  const int doublings = std::min(failed_reads_++, 4);
  reading_ = false;
  if (!stopped_) {
    resync_timer_->Arm(std::min<std::chrono::milliseconds>(options_.resync_delay * (1 << doublings),
                                                           std::chrono::seconds(5)));
  }
}

void EtcdConsoleJournal::OnHead(StatusOr<TxnResponse> r) {
  if (stopped_) return;
  if (!r.ok()) return ReadFailed(r.status().message());
  if (r->responses.size() != 4) return ReadFailed("unexpected txn answer");
  read_revision_ = r->revision;
  uint64_t counter = 0;
  for (const KeyValue& kv : r->responses[0].kvs) {
    NoteCounter(kv);
    if (auto v = ParseDecimal(kv.value)) counter = *v;
  }
  read_counter_ = std::max(counter, counter_);
  std::set<std::string> present;
  for (size_t i = 1; i < 3; ++i) {
    for (const KeyValue& kv : r->responses[i].kvs) {
      present.insert(kv.key);
      ApplyMarkKv(kv, false);
    }
  }
  // A mark we hold that the read lacks was lifted (unless we applied it after R).
  std::vector<std::string> gone;
  for (const auto& [key, state] : marks_) {
    if (state.second && !present.count(key) && state.first < read_revision_) gone.push_back(key);
  }
  for (const std::string& key : gone) ApplyMark(key, read_revision_, std::nullopt);
  for (const KeyValue& kv : r->responses[3].kvs) ApplyNodeKv(kv, false);

  const uint64_t keep = options_.limits.max_events;
  const uint64_t first = read_counter_ > keep ? read_counter_ - keep + 1 : 1;
  ReadPage(std::max(first, delivered_ + 1));
}

void EtcdConsoleJournal::ReadPage(uint64_t from) {
  if (from > read_counter_) {
    Settle(read_counter_ + 1);
    return StartWatch();
  }
  const uint64_t to = std::min(read_counter_ + 1, from + kPageEvents);
  etcd_->Range({.key = EventKey(from), .range_end = EventKey(to)},
               [this, from, to, a = std::weak_ptr<bool>(alive_)](StatusOr<RangeResponse> r) {
                 if (!a.expired()) OnPage(from, to, std::move(r));
               });
}

void EtcdConsoleJournal::OnPage(uint64_t from, uint64_t to, StatusOr<RangeResponse> r) {
  if (stopped_) return;
  if (!r.ok()) return ReadFailed(r.status().message());
  for (const KeyValue& kv : r->kvs) Apply(kv, false);
  Settle(to);  // [from, to) is read: what it lacks was deleted
  ReadPage(to);
}

void EtcdConsoleJournal::StartWatch() {
  std::weak_ptr<bool> a = alive_;
  etcd_->Watch(
      {.key = root_, .range_end = PrefixEnd(root_), .start_revision = read_revision_ + 1},
      [this, a](const WatchResponse& w) {
        if (!a.expired()) OnWatch(w);
      },
      [this, a](Status why) {
        if (a.expired() || stopped_) return;
        spdlog::warn("console journal: etcd watch closed ({}); reading again", why.ToString());
        synced_ = false;
        reading_ = false;
        resync_timer_->Arm(options_.resync_delay);
      });
}

void EtcdConsoleJournal::OnWatch(const WatchResponse& w) {
  if (stopped_) return;
  if (w.canceled) {
    // e.g. its start revision was compacted: what it missed is read again.
    spdlog::warn("console journal: etcd watch canceled ({}); reading again",
                 Printable(w.cancel_reason));
    reading_ = false;
    synced_ = false;
    return Resync();
  }
  if (w.created) {
    reading_ = false;
    synced_ = true;
    failed_reads_ = 0;
    spdlog::info("console journal in sync at etcd revision {}: last seq {}", read_revision_,
                 delivered_);
  }
  for (const WatchEvent& ev : w.events) Apply(ev.kv, ev.deleted);
  Flush();
}

void EtcdConsoleJournal::Apply(const KeyValue& kv, bool deleted) {
  if (!kv.undecodable.empty()) return Skip(kv, kv.undecodable);
  const std::string& key = kv.key;
  if (key == seq_key_) {
    if (deleted) {
      counter_mod_ = 0;  // numbering goes on from counter_ (never reused)
    } else {
      NoteCounter(kv);
    }
    return;
  }
  if (key.starts_with(cordon_prefix_) || key.starts_with(disable_prefix_)) {
    return ApplyMarkKv(kv, deleted);
  }
  if (key.starts_with(nodes_prefix_)) return ApplyNodeKv(kv, deleted);
  if (key.starts_with(events_prefix_)) {
    auto seq = ParseDecimal(std::string_view(key).substr(events_prefix_.size()));
    if (!seq || *seq == 0) return deleted ? void() : Skip(kv, "not an event key");
    if (deleted) {
      stored_.erase(*seq);
      // Retention deletes oldest first: whoever deleted this deleted everything below it.
      deleted_below_ = std::max(deleted_below_, *seq + 1);
      return;
    }
    auto e = console::EventFromJson(kv.value);
    if (!e.ok()) return Skip(kv, e.status().message());
    if (e->seq != *seq) return Skip(kv, "its seq differs from its key's");
    stored_[*seq] = UnixMillis(e->time);
    return Offer(std::move(*e));
  }
  if (!deleted) Skip(kv, "not a key the console uses");
}

void EtcdConsoleJournal::NoteCounter(const KeyValue& kv) {
  // Even an unreadable counter's revision is taken, so the next append overwrites it with the
  // highest seq this replica knows.
  counter_mod_ = std::max(counter_mod_, kv.mod_revision);
  auto v = ParseDecimal(kv.value);
  if (!v) return Skip(kv, "the event counter is not a decimal number");
  counter_ = std::max(counter_, *v);
}

void EtcdConsoleJournal::ApplyMarkKv(const KeyValue& kv, bool deleted) {
  const bool cordon = kv.key.starts_with(cordon_prefix_);
  const std::string name = kv.key.substr((cordon ? cordon_prefix_ : disable_prefix_).size());
  if (!ValidateLabel(name, cordon ? "node" : "license").ok()) {
    return deleted ? void() : Skip(kv, "not a valid name");
  }
  if (deleted) return ApplyMark(kv.key, kv.mod_revision, std::nullopt);
  auto mark = ParseMark(name, kv.value);
  if (!mark.ok()) return Skip(kv, mark.status().message());
  ApplyMark(kv.key, kv.mod_revision, std::move(*mark));
}

void EtcdConsoleJournal::ApplyMark(const std::string& key, int64_t revision,
                                   std::optional<AdminMark> mark) {
  auto [it, fresh] = marks_.try_emplace(key, revision, mark.has_value());
  if (!fresh) {
    if (revision <= it->second.first) return;  // a newer value was applied already
    it->second = {revision, mark.has_value()};
  }
  if (!sink_) return;
  const bool cordon = key.starts_with(cordon_prefix_);
  const std::string name = key.substr((cordon ? cordon_prefix_ : disable_prefix_).size());
  sink_->ApplyMark(cordon ? MarkKind::kCordon : MarkKind::kDisable, name, std::move(mark));
}

void EtcdConsoleJournal::Skip(const KeyValue& kv, const std::string& why) {
  if (logged_.size() > 10000) logged_.clear();
  if (!logged_.insert({kv.key, kv.mod_revision}).second) return;
  ++skipped_;
  spdlog::warn("console journal: skipped etcd key {} (revision {}): {}", Printable(kv.key),
               kv.mod_revision, Printable(why));
}

// ---- events to the sink, in seq order -------------------------------------------------------

void EtcdConsoleJournal::Offer(Event e) {
  if (e.seq <= delivered_) return;
  pending_.try_emplace(e.seq, std::move(e));
}

void EtcdConsoleJournal::Settle(uint64_t below) {
  while (!pending_.empty() && pending_.begin()->first < below) {
    out_.push_back(std::move(pending_.begin()->second));
    pending_.erase(pending_.begin());
  }
  delivered_ = std::max(delivered_, below - 1);
  Flush();
}

void EtcdConsoleJournal::Flush() {
  while (!pending_.empty() && pending_.begin()->first == delivered_ + 1) {
    out_.push_back(std::move(pending_.begin()->second));
    pending_.erase(pending_.begin());
    ++delivered_;
  }
  if (!out_.empty()) {
    std::vector<Event> out = std::move(out_);
    out_.clear();
    if (sink_) sink_->ApplyEvents(std::move(out));
  }
  if (pending_.empty()) {
    hold_timer_->Disarm();
  } else if (!hold_timer_->armed() && !reading_) {
    hold_timer_->Arm(options_.hold_back);
  }
}

// ---- writing --------------------------------------------------------------------------------

Status EtcdConsoleJournal::NotStored(const Status& s, const std::string& what) const {
  const std::string& m = s.message();
  if (m.find("space exceeded") != std::string::npos || m.find("NOSPACE") != std::string::npos) {
    return Unavailable(std::string(EtcdMaintenance::kNoSpaceMessage) +
                       " (the quota is etcd's --quota-backend-bytes): " + what +
                       " not stored, retry");
  }
  return Unavailable("etcd " + etcd_->current_endpoint() + " unavailable (" + m + "): " + what +
                     " not stored, retry");
}

void EtcdConsoleJournal::AppendEvents(std::vector<Event> events, Done done) {
  if (stopped_) return done(Unavailable("tokenmgr is shutting down: events not stored"));
  if (events.empty()) return done(Status::Ok());
  if (events.size() > kMaxEventsPerTxn) {
    return done(
        InvalidArgument("more than " + std::to_string(kMaxEventsPerTxn) + " events in one append"));
  }
  queued_events_ += events.size();
  queue_.push_back({std::move(events), std::move(done)});
  // Events that come within event_flush go in one txn: 500 holders started together report
  // one event each about every 3 ms, and a txn each cost etcd as much as the lock's handoffs.
  // While a txn is in flight they wait for its answer anyway (OnAppendTxn sends them).
  if (in_flight_ || options_.event_flush.count() == 0 || queued_events_ >= kMaxEventsPerTxn) {
    return Pump();
  }
  if (!event_timer_->armed()) event_timer_->Arm(options_.event_flush);
}

void EtcdConsoleJournal::Pump() {
  if (in_flight_ || queue_.empty() || stopped_) return;
  auto batch = std::make_shared<std::vector<Append>>();
  size_t n = 0;
  while (!queue_.empty() && n + queue_.front().events.size() <= kMaxEventsPerTxn) {
    n += queue_.front().events.size();
    batch->push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  queued_events_ -= n;
  event_timer_->Disarm();
  in_flight_ = true;
  Send(std::move(batch), 1);
}

void EtcdConsoleJournal::Send(std::shared_ptr<std::vector<Append>> batch, int attempt) {
  uint64_t seq = std::max(counter_, delivered_);
  if (!stored_.empty()) seq = std::max(seq, stored_.rbegin()->first);
  Txn t;
  t.compare = {Compare::Mod(seq_key_, CompareResult::kEqual, counter_mod_)};
  t.success.push_back(Op::Put(seq_key_, ""));  // the value is set below
  for (Append& a : *batch) {
    for (Event& e : a.events) {
      e.seq = ++seq;
      t.success.push_back(Op::Put(EventKey(seq), console::ToJson(e)));
    }
  }
  t.success.front().value = std::to_string(seq);
  t.failure = {Op::Range(seq_key_)};
  etcd_->DoTxn(std::move(t), [this, batch, attempt,
                              a = std::weak_ptr<bool>(alive_)](StatusOr<TxnResponse> r) mutable {
    if (a.expired()) return;
    OnAppendTxn(std::move(batch), attempt, std::move(r));
  });
}

void EtcdConsoleJournal::OnAppendTxn(std::shared_ptr<std::vector<Append>> batch, int attempt,
                                     StatusOr<TxnResponse> r) {
  auto finish = [&](Status s) {
    in_flight_ = false;
    for (Append& a : *batch) a.done(s);
    Pump();
  };
  if (stopped_) return finish(Unavailable("tokenmgr is shutting down: events not stored"));
  if (!r.ok()) {
    // The outcome is unknown; the counter's mod revision we hold may be stale: the next
    // compare fails and reads it.
    return finish(r.status().code() == StatusCode::kUnavailable ? NotStored(r.status(), "events")
                                                                : r.status());
  }
  if (!r->succeeded) {
    // Another replica numbered events since: take its counter and number ours after it.
    counter_mod_ = 0;
    for (const OpResponse& resp : r->responses) {
      for (const KeyValue& kv : resp.kvs) NoteCounter(kv);
    }
    if (attempt >= options_.max_attempts) {
      return finish(Unavailable("etcd: could not number events after " + std::to_string(attempt) +
                                " tries (other replicas kept writing): events not stored, retry"));
    }
    return Send(std::move(batch), attempt + 1);
  }
  uint64_t last = counter_;
  for (Append& a : *batch) {
    for (const Event& e : a.events) last = std::max(last, e.seq);
  }
  if (r->revision >= counter_mod_) {
    counter_mod_ = r->revision;
    counter_ = std::max(counter_, last);
  }
  for (Append& a : *batch) {
    for (Event& e : a.events) {
      stored_[e.seq] = UnixMillis(e.time);
      Offer(e);
    }
  }
  Flush();
  // A replica that appends a lot trims as it goes (one range delete per kRetentionSlack events),
  // not only on the timer.
  if (counter_ >= deleted_below_ + options_.limits.max_events + kRetentionSlack) Trim();
  finish(Status::Ok());
}

void EtcdConsoleJournal::SetMark(MarkKind kind, const std::string& name,
                                 std::optional<AdminMark> mark, Done done) {
  if (stopped_) return done(Unavailable("tokenmgr is shutting down: admin action not stored"));
  if (Status s = ValidateLabel(name, kind == MarkKind::kCordon ? "node" : "license"); !s.ok()) {
    return done(s);
  }
  const std::string key = (kind == MarkKind::kCordon ? cordon_prefix_ : disable_prefix_) + name;
  Txn t;
  t.success = {mark ? Op::Put(key, MarkJson(*mark)) : Op::Delete(key)};
  etcd_->DoTxn(std::move(t), [this, key, mark = std::move(mark), done = std::move(done),
                              a = std::weak_ptr<bool>(alive_)](StatusOr<TxnResponse> r) mutable {
    if (a.expired()) return;
    if (!r.ok()) {
      return done(r.status().code() == StatusCode::kUnavailable
                      ? NotStored(r.status(), "admin action")
                      : r.status());
    }
    // Applied now unless the watch already brought a newer value of this key.
    ApplyMark(key, r->revision, std::move(mark));
    done(Status::Ok());
  });
}

// ---- node rows ------------------------------------------------------------------------------

namespace {

std::string NodeJson(const console::NodeRow& r) {
  nlohmann::json j = {{"pod", r.pod},
                      {"state", console::NodeStateName(r.last_reported)},
                      {"license", r.license},
                      {"version", r.version},
                      {"since_ms", UnixMillis(r.since)},
                      {"seen_ms", UnixMillis(r.last_seen)}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

StatusOr<console::NodeRow> ParseNodeRow(const std::string& node, const std::string& value) {
  nlohmann::json j = nlohmann::json::parse(value, nullptr, false);
  if (!j.is_object()) return InvalidArgument("not a JSON object");
  console::NodeRow r;
  r.node = node;
  for (auto [field, out] :
       {std::pair{"pod", &r.pod}, {"license", &r.license}, {"version", &r.version}}) {
    auto it = j.find(field);
    if (it == j.end() || !it->is_string() || it->get_ref<const std::string&>().size() > 256) {
      return InvalidArgument(std::string("'") + field + "' must be a short string");
    }
    *out = it->get<std::string>();
  }
  auto state = j.find("state");
  std::optional<console::NodeState> st;
  if (state != j.end() && state->is_string())
    st = console::ParseNodeState(state->get<std::string>());
  if (!st || *st == console::NodeState::kGone) return InvalidArgument("'state' is not a state");
  r.state = r.last_reported = *st;
  for (auto [field, out] : {std::pair{"since_ms", &r.since}, {"seen_ms", &r.last_seen}}) {
    auto it = j.find(field);
    if (it == j.end() || !it->is_number_integer()) {
      return InvalidArgument(std::string("'") + field + "' must be an integer");
    }
    *out = WallTime(std::chrono::milliseconds(it->get<int64_t>()));
  }
  if (!ValidateLabel(r.pod, "pod").ok() ||
      (!r.license.empty() && !ValidateLabel(r.license, "license").ok())) {
    return InvalidArgument("pod or license is not a valid name");
  }
  return r;
}

}  // namespace

void EtcdConsoleJournal::ApplyNodeKv(const KeyValue& kv, bool deleted) {
  const std::string node = kv.key.substr(nodes_prefix_.size());
  if (deleted) {
    node_seen_ms_.erase(node);
    return;
  }
  if (!ValidateLabel(node, "node").ok()) return Skip(kv, "not a valid node name");
  auto row = ParseNodeRow(node, kv.value);
  if (!row.ok()) return Skip(kv, row.status().message());
  node_seen_ms_[node] = UnixMillis(row->last_seen);
  if (node_sink_) node_sink_(*row);
}

void EtcdConsoleJournal::NoteNode(const console::NodeRow& row) {
  if (stopped_) return;
  auto it = written_.find(row.node);
  const bool changed = it == written_.end() || it->second.row.last_reported != row.last_reported ||
                       it->second.row.license != row.license || it->second.row.pod != row.pod ||
                       it->second.row.version != row.version;
  if (!changed && time_.Now() - it->second.at < options_.gone_after / 3) return;
  dirty_[row.node] = row;
  if (!nodes_in_flight_ && !node_timer_->armed()) node_timer_->Arm(options_.node_flush);
}

void EtcdConsoleJournal::FlushNodes() {
  if (stopped_ || nodes_in_flight_ || dirty_.empty()) return;
  auto batch = std::make_shared<std::vector<console::NodeRow>>();
  Txn t;
  while (!dirty_.empty() && t.success.size() < kMaxOpsPerTxn) {
    auto first = dirty_.begin();
    t.success.push_back(Op::Put(nodes_prefix_ + first->first, NodeJson(first->second)));
    batch->push_back(std::move(first->second));
    dirty_.erase(first);
  }
  nodes_in_flight_ = true;
  const SteadyTime sent = time_.Now();
  etcd_->DoTxn(std::move(t),
               [this, batch, sent, a = std::weak_ptr<bool>(alive_)](StatusOr<TxnResponse> r) {
                 if (a.expired()) return;
                 nodes_in_flight_ = false;
                 if (r.ok()) {
                   for (console::NodeRow& row : *batch) {
                     const std::string node = row.node;  // (row is moved from below)
                     written_[node] = {std::move(row), sent};
                   }
                 } else {
                   // Rows not stored: written again on their next report (a newer one wins).
                   spdlog::warn("console journal: node rows not stored ({})", r.status().message());
                   for (console::NodeRow& row : *batch)
                     dirty_.try_emplace(row.node, std::move(row));
                 }
                 if (!dirty_.empty() && !stopped_)
                   node_timer_->Arm(r.ok() ? options_.node_flush : options_.resync_delay);
               });
}

// ---- retention ------------------------------------------------------------------------------

void EtcdConsoleJournal::CheckRetention() {
  if (stopped_) return;
  retention_timer_->Arm(options_.retention_interval);
  Trim();
}

void EtcdConsoleJournal::Trim() {
  if (!synced_ || trimming_) return;
  // By count: keep the newest max_events of what was numbered.
  const uint64_t keep = options_.limits.max_events;
  uint64_t cut = counter_ > keep ? counter_ - keep + 1 : 0;
  // By age: oldest first, up to the first event young enough.
  const int64_t oldest_kept =
      UnixMillis(time_.WallNow()) -
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.limits.max_age).count();
  for (const auto& [seq, ms] : stored_) {
    if (ms >= oldest_kept) break;
    cut = std::max(cut, seq + 1);
  }
  // Node keys nobody refreshed for node_retention (at most one txn's worth per check).
  const int64_t node_cutoff =
      UnixMillis(time_.WallNow()) -
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.node_retention).count();
  Txn old_nodes;
  for (const auto& [node, ms] : node_seen_ms_) {
    if (ms < node_cutoff && old_nodes.success.size() < kMaxOpsPerTxn) {
      old_nodes.success.push_back(Op::Delete(nodes_prefix_ + node));
    }
  }
  if (!old_nodes.success.empty()) {
    etcd_->DoTxn(std::move(old_nodes), [](StatusOr<TxnResponse>) {});  // idempotent; next check
  }
  if (cut <= deleted_below_) return;
  Txn t;
  t.success = {Op::DeleteRange(events_prefix_, EventKey(cut))};
  ++deletes_;
  trimming_ = true;
  etcd_->DoTxn(std::move(t), [this, cut, a = std::weak_ptr<bool>(alive_)](StatusOr<TxnResponse> r) {
    if (a.expired()) return;
    trimming_ = false;
    if (!r.ok()) {
      spdlog::warn("console journal: could not delete events below seq {} ({}); trying later", cut,
                   r.status().message());
      return;
    }
    deleted_below_ = std::max(deleted_below_, cut);
    stored_.erase(stored_.begin(), stored_.lower_bound(cut));
  });
}

std::string EtcdConsoleJournal::RenderMetrics() const {
  MetricsText m;
  m.Gauge("tokenmgr_console_journal_synced", "Whether the console journal watches etcd.",
          synced_ ? 1 : 0);
  m.Gauge("tokenmgr_console_journal_last_seq", "The highest event seq this replica holds.",
          static_cast<double>(delivered_));
  m.Counter("tokenmgr_console_journal_skipped_keys_total",
            "Keys under console/ that were skipped (foreign or undecodable).", skipped_);
  m.Counter("tokenmgr_console_journal_deletes_total", "Retention range deletes sent to etcd.",
            deletes_);
  return m.Take();
}

}  // namespace lm::store
