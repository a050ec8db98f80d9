#include "holder/event_spool.h"

#include <nlohmann/json.hpp>

namespace lm::holder {

using nlohmann::json;

Status FileSpool::Lock() {
  if (lock_ || !busy_.ok()) return busy_;
  size_t slash = path_.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
  StatusOr<std::unique_ptr<license::DirLock>> lock = fs_.TryLockDir(dir);
  if (lock.ok()) {
    lock_ = std::move(*lock);
  } else if (lock.status().code() == StatusCode::kFailedPrecondition) {
    busy_ = FailedPrecondition(
        "event spool " + path_ + ": " + dir +
        " is in use by another license-holder (two agents with one NODE_NAME, or one host dir?); "
        "this agent's events for tokenmgr's history are kept in memory only");
  }
  return busy_;
}

StatusOr<SpoolContents> FileSpool::Load() {
  LM_RETURN_IF_ERROR(Lock());
  auto bad = [&](const std::string& why) {
    return InvalidArgument("event spool " + path_ + ": " + why);
  };
  StatusOr<std::string> text = fs_.Read(path_, kMaxBytes);
  if (!text.ok()) {
    if (text.status().code() == StatusCode::kNotFound) return text.status();  // none yet
    return bad(text.status().message());  // too large, a symlink, unreadable
  }
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return bad("not a JSON object");
  auto origin = j.find("origin");
  auto next = j.find("next_seq");
  auto events = j.find("events");
  if (origin == j.end() || !origin->is_string() || next == j.end() ||
      !next->is_number_unsigned() || events == j.end() || !events->is_array()) {
    return bad("expected {\"origin\": \"<16 hex>\", \"next_seq\": n, \"events\": [...]}");
  }
  SpoolContents c;
  StatusOr<uint64_t> o = console::ParseOrigin(origin->get_ref<const std::string&>(), "'origin'");
  if (!o.ok()) return bad(o.status().message());
  c.origin = *o;
  c.next_seq = next->get<uint64_t>();
  for (const json& e : *events) {
    StatusOr<console::Event> ev = console::EventFromJson(e.dump());
    if (!ev.ok()) return bad(ev.status().message());
    if (ev->origin != c.origin || ev->origin_seq == 0 || ev->origin_seq >= c.next_seq ||
        (!c.events.empty() && ev->origin_seq <= c.events.back().origin_seq)) {
      return bad("an event is not numbered in this spool's stream, in order");
    }
    c.events.push_back(std::move(*ev));
  }
  return c;
}

Status FileSpool::Save(const SpoolContents& c) {
  LM_RETURN_IF_ERROR(Lock());
  // Nothing waits: no file (HOST_DIR is the node's Bitfusion directory; keep it clean).
  if (c.events.empty()) return fs_.RemoveAll(path_);
  std::string out = "{\"origin\":\"" + console::OriginText(c.origin) +
                    "\",\"next_seq\":" + std::to_string(c.next_seq) + ",\"events\":[";
  for (size_t i = 0; i < c.events.size(); ++i) {
    if (i > 0) out += ',';
    out += console::ToJson(c.events[i]);
  }
  out += "]}\n";
  return fs_.WriteAtomic(path_, out, 0600);
}

StatusOr<SpoolContents> MemorySpool::Load() {
  if (!contents) return NotFound("no spool");
  return *contents;
}

Status MemorySpool::Save(const SpoolContents& c) {
  ++saves;
  if (!save_status.ok()) return save_status;
  contents = c;
  return Status::Ok();
}

}  // namespace lm::holder
