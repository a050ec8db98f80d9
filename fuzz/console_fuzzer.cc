// What the operator's console reads from outside: an agent's report body (PUT /api/nodes/:node),
// a stored event (the history file, etcd), and the agent's event spool in its host dir.
//   - ParseAgentReport, EventFromJson and FileSpool::Load never throw or crash;
//   - an accepted report round-trips through AgentReportJson (kinds, licenses, tokens, details,
//     times, origins and their numbers), and its events pass the limits tokenmgr stores;
//   - an accepted event round-trips through ToJson;
//   - an accepted spool holds events of its own stream, numbered in order below next_seq, and
//     round-trips through Save.
#include <cstdint>
#include <string>

#include "console/console_json.h"
#include "console/event_log.h"
#include "holder/event_spool.h"
#include "license/fake_fs.h"

#include "fuzz_check.h"

namespace {

using lm::console::Event;

bool Same(const Event& a, const Event& b) {
  return a.seq == b.seq && a.time == b.time && a.kind == b.kind && a.license == b.license &&
         a.node == b.node && a.token == b.token && a.actor == b.actor && a.detail == b.detail &&
         a.origin == b.origin && a.origin_seq == b.origin_seq;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lm;
  std::string in(reinterpret_cast<const char*>(data), size);

  auto report = console::ParseAgentReport("node-1", in);
  if (report.ok()) {
    for (const Event& e : report->events) {
      Check(e.node == "node-1", "a report's event names another node");
      Check(e.license.size() <= 253 && e.detail.size() <= 256, "an event field over its limit");
      Check(e.origin == 0 || e.origin_seq != 0, "an event in a stream without its number");
    }
    auto back = console::ParseAgentReport("node-1", console::AgentReportJson(*report));
    Check(back.ok(), "ParseAgentReport(AgentReportJson(r)) failed");
    Check(back->events.size() == report->events.size(), "a report lost events on a round trip");
    for (size_t i = 0; i < back->events.size(); ++i) {
      // A report carries one stream: the first event's origin is the report's.
      Event want = report->events[i];
      Check(Same(back->events[i], want), "a report's event changed on a round trip");
    }
  }

  auto event = console::EventFromJson(in);
  if (event.ok()) {
    auto back = console::EventFromJson(console::ToJson(*event));
    Check(back.ok() && Same(*back, *event), "EventFromJson(ToJson(e)) != e");
  }

  license::FakeFilesystem fs;
  fs.AddDir("/host");
  fs.AddFile("/host/spool", in);
  holder::FileSpool spool(fs, "/host/spool");
  auto c = spool.Load();
  if (c.ok()) {
    Check(c->origin != 0, "a spool without a stream");
    uint64_t last = 0;
    for (const Event& e : c->events) {
      Check(e.origin == c->origin && e.origin_seq > last && e.origin_seq < c->next_seq,
            "a spooled event outside its stream's order");
      last = e.origin_seq;
    }
    Check(spool.Save(*c).ok(), "Save of a loaded spool failed");
    auto back = spool.Load();
    Check(back.ok() && back->origin == c->origin && back->next_seq == c->next_seq &&
              back->events.size() == c->events.size(),
          "FileSpool Load(Save(c)) != c");
    for (size_t i = 0; i < c->events.size(); ++i) {
      Check(Same(back->events[i], c->events[i]), "a spooled event changed on a round trip");
    }
  }
  return 0;
}
