#include "console/file_journal.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <string>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"

namespace lm::console {
namespace {

constexpr size_t kMaxLine = 8 * 1024;  // an event line is far shorter; anything longer is junk

}  // namespace

FileJournal::~FileJournal() {
  if (fd_ >= 0) ::close(fd_);
}

StatusOr<std::unique_ptr<FileJournal>> FileJournal::Open(const std::string& dir, Limits limits,
                                                         const Clock& clock) {
  std::unique_ptr<FileJournal> j(new FileJournal(dir, limits, clock));
  if (Status s = j->Load(); !s.ok()) return s;
  j->fd_ = ::open(j->EventsPath().c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
                  0600);
  if (j->fd_ < 0) return Unavailable(ErrnoMessage("open", j->EventsPath(), errno));
  return j;
}

Status FileJournal::Load() {
  auto admin = ReadSmallFile(AdminPath(), 4 * 1024 * 1024);
  if (admin.ok()) {
    auto parsed = AdminStateFromJson(*admin);
    if (!parsed.ok()) {
      return DataLoss(AdminPath() + " is unreadable (" + parsed.status().message() +
                      "); it holds the cordoned nodes and disabled licenses: fix it, or move it "
                      "aside to start with none");
    }
    admin_ = std::move(*parsed);
  } else if (admin.status().code() != StatusCode::kNotFound) {
    return admin.status();
  }

  std::ifstream in(EventsPath(), std::ios::binary);
  if (!in) return Status::Ok();  // no history yet
  std::deque<Event> kept;
  std::string line;
  size_t bad = 0;
  bool torn_last = false;
  while (std::getline(in, line)) {
    const bool complete = !in.eof();  // the last line lacks its '\n' when a write was torn
    if (line.empty()) continue;
    if (line.size() > kMaxLine) {
      ++bad;
      continue;
    }
    nlohmann::json meta = nlohmann::json::parse(line, nullptr, false);
    if (meta.is_object() && meta.size() == 1 && meta.contains("last_seq") &&
        meta["last_seq"].is_number_unsigned()) {
      last_seq_ = std::max(last_seq_, meta["last_seq"].get<uint64_t>());
      continue;
    }
    auto e = EventFromJson(line);
    if (!e.ok()) {
      if (!complete) {
        torn_last = true;
      } else {
        ++bad;
      }
      continue;
    }
    ++lines_;
    last_seq_ = std::max(last_seq_, e->seq);
    kept.push_back(std::move(*e));
    if (kept.size() > limits_.max_events) kept.pop_front();
  }
  if (torn_last) spdlog::warn("{}: dropped a torn last line (a crash while appending)", EventsPath());
  if (bad > 0) spdlog::warn("{}: skipped {} unreadable line(s)", EventsPath(), bad);
  skipped_ = bad;
  events_.assign(kept.begin(), kept.end());
  return Status::Ok();
}

void FileJournal::AppendEvents(std::vector<Event> events, Done done) {
  uint64_t seq = last_seq_;
  for (Event& e : events) e.seq = ++seq;
  Status s = Append(events);
  if (s.ok() && sink_ && !events.empty()) sink_->ApplyEvents(std::move(events));
  if (done) done(s);
}

void FileJournal::SetMark(MarkKind kind, const std::string& name, std::optional<AdminMark> mark,
                          Done done) {
  AdminState next = admin_;
  auto& marks = kind == MarkKind::kCordon ? next.cordoned : next.disabled;
  if (mark) {
    marks[name] = *mark;
  } else {
    marks.erase(name);
  }
  Status s = SaveAdmin(next);
  if (s.ok() && sink_) sink_->ApplyMark(kind, name, std::move(mark));
  if (done) done(s);
}

Status FileJournal::Append(const std::vector<Event>& events) {
  if (events.empty()) return Status::Ok();
  std::string text;
  for (const Event& e : events) text += ToJson(e) + "\n";
  if (Status s = WriteAll(fd_, text, EventsPath()); !s.ok()) return s;
  if (::fdatasync(fd_) != 0) return Unavailable(ErrnoMessage("fdatasync", EventsPath(), errno));
  for (const Event& e : events) last_seq_ = std::max(last_seq_, e.seq);
  lines_ += events.size();
  if (lines_ >= 2 * limits_.max_events + 16) return Compact();
  return Status::Ok();
}

Status FileJournal::Compact() {
  // Streams the file into its replacement, keeping what the limits allow: memory stays flat
  // however many events the limits keep.
  const uint64_t first_kept = last_seq_ >= limits_.max_events ? last_seq_ - limits_.max_events + 1 : 1;
  const WallTime oldest = clock_.WallNow() - limits_.max_age;
  size_t kept = 0;
  auto write = [&](int fd, const std::string& tmp) -> Status {
    std::ifstream in(EventsPath(), std::ios::binary);
    if (!in) return Unavailable("cannot read " + EventsPath());
    std::string out = "{\"last_seq\":" + std::to_string(last_seq_) + "}\n";
    for (std::string line; std::getline(in, line);) {
      if (line.empty() || line.size() > kMaxLine) continue;
      auto e = EventFromJson(line);
      if (!e.ok() || e->seq < first_kept || e->time < oldest) continue;
      out += line;
      out += '\n';
      ++kept;
      if (out.size() >= 256 * 1024) {
        if (Status s = WriteAll(fd, out, tmp); !s.ok()) return s;
        out.clear();
      }
    }
    return WriteAll(fd, out, tmp);
  };
  auto fd = CreateFileAtomically(EventsPath(), write, 0600);
  if (!fd.ok()) {
    spdlog::warn("{}: could not compact ({}); appending goes on", EventsPath(),
                 fd.status().message());
    lines_ = limits_.max_events;  // try again after as many appends, not on every one
    return Status::Ok();  // the appended events are stored; only the file stays larger
  }
  ::close(fd_);
  ::close(*fd);
  fd_ = ::open(EventsPath().c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
  if (fd_ < 0) return Unavailable(ErrnoMessage("open", EventsPath(), errno));
  lines_ = kept;
  return Status::Ok();
}

Status FileJournal::SaveAdmin(const AdminState& state) {
  if (Status s = WriteFileAtomically(AdminPath(), ToJson(state), 0600); !s.ok()) return s;
  admin_ = state;
  return Status::Ok();
}

}  // namespace lm::console
