#include "cli/cli.h"

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>

#include "cli/table.h"
#include "common/strings.h"

namespace lm::cli {
namespace {

using nlohmann::json;

constexpr std::string_view kVerbs[] = {"status", "licenses", "nodes",   "events",  "usage",
                                       "cordon", "uncordon", "disable", "enable"};

bool TakesName(std::string_view verb) {
  return verb == "cordon" || verb == "uncordon" || verb == "disable" || verb == "enable";
}

// The outcome of one API call, as the command's exit code and a message for stderr.
struct Outcome {
  int code = kOk;
  std::string message;
  json body;
};

Outcome Failed(int code, std::string message) { return {code, std::move(message), json()}; }

std::string ErrorText(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("Error") && j["Error"].is_string()) {
    return j["Error"].get<std::string>();
  }
  return body.substr(0, 200);
}

Outcome Get(Api& api, const std::string& method, const std::string& path,
            const std::string& body = "") {
  auto r = api.Call(method, path, body);
  if (!r.ok()) {
    return Failed(kUnreachable, "cannot reach tokenmgr: " + r.status().message() +
                                    " (check --url or TOKENMGR_URL, and that tokenmgr runs)");
  }
  const int s = r->status;
  if (s == 401 || s == 403) {
    return Failed(kDenied, "tokenmgr refused the call (" + std::to_string(s) + "): " +
                               ErrorText(r->body) +
                               " (pass the API token with --token-file or AUTH_TOKEN_FILE)");
  }
  if (s == 404) return Failed(kNotFound, ErrorText(r->body));
  if (s == 400) return Failed(kUsage, ErrorText(r->body));
  if (s != 200) {
    return Failed(kFailed, "tokenmgr answered " + std::to_string(s) + ": " + ErrorText(r->body));
  }
  Outcome o;
  o.body = json::parse(r->body, nullptr, false);
  if (o.body.is_discarded() && path.find("format=csv") == std::string::npos) {
    return Failed(kFailed, "tokenmgr answered something that is not JSON: " + r->body.substr(0, 200));
  }
  if (o.body.is_discarded()) o.body = r->body;  // CSV, kept as a string
  return o;
}

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

long long Num(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<long long>() : 0;
}

std::string Ago(const Clock& clock, const json& j, const char* key) {
  long long at = Num(j, key);
  if (at <= 0) return "";
  return ShortDuration(UnixMillis(clock.WallNow()) - at);
}

std::string Utc(long long ms) {
  const std::time_t t = ms / 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int Print(std::ostream& out, const Command& c, const json& body, const std::string& table) {
  if (c.output == "json") {
    out << body.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  } else {
    out << table;
  }
  return kOk;
}

int Licenses(const Command& c, Api& api, const Clock& clock, std::ostream& out, std::ostream& err) {
  Outcome o = Get(api, "GET", "/api/licenses");
  if (o.code != kOk) return err << "tokenmgr licenses: " << o.message << "\n", o.code;
  Table t({"LICENSE", "STATE", "NODE", "POD", "TOKEN", "CLAIMED", "DETAIL"});
  for (const json& l : o.body.value("licenses", json::array())) {
    // A disabled license says so first: an operator retired it (whatever its claim shows).
    const bool off = l.value("disabled", false);
    t.Row({Str(l, "name"), off ? "disabled, " + Str(l, "state") : Str(l, "state"), Str(l, "node"),
           Str(l, "pod"), Str(l, "token"),
           Ago(clock, l, "claimed_at_ms"), Str(l, "error")});
  }
  if (!o.body.value("configured", true)) {
    err << "tokenmgr has no pool directory configured (POOL_DIR)\n";
  }
  return Print(out, c, o.body, t.Render());
}

int Nodes(const Command& c, Api& api, const Clock& clock, std::ostream& out, std::ostream& err) {
  Outcome o = Get(api, "GET", "/api/nodes");
  if (o.code != kOk) return err << "tokenmgr nodes: " << o.message << "\n", o.code;
  Table t({"NODE", "STATE", "LICENSE", "FOR", "LAST SEEN", "POD", "VERSION"});
  for (const json& n : o.body.value("nodes", json::array())) {
    t.Row({Str(n, "node"), Str(n, "state"), Str(n, "license"), Ago(clock, n, "since_ms"),
           Ago(clock, n, "last_seen_ms") + " ago", Str(n, "pod"), Str(n, "version")});
  }
  return Print(out, c, o.body, t.Render());
}

int Status_(const Command& c, Api& api, std::ostream& out, std::ostream& err) {
  Outcome lock = Get(api, "GET", "/api/token/status");
  if (lock.code != kOk) return err << "tokenmgr status: " << lock.message << "\n", lock.code;
  Outcome pool = Get(api, "GET", "/api/licenses");
  Outcome nodes = Get(api, "GET", "/api/nodes");
  json all = {{"lock", lock.body}};
  const json& l = lock.body;
  std::string held = "free";
  if (l.value("held", false)) {
    held = "held by " + Str(l, "holder") + " (token " + Str(l, "token") + ", lease ends in " +
           ShortDuration(Num(l, "expires_in_ms")) + ")";
  }
  std::string text = "lock:      " + held + ", " + Str(l, "waiters") + " waiting\n";
  auto totals = [&](const char* label, const Outcome& o, const char* key) {
    if (o.code != kOk) return;
    const json t = o.body.value("totals", json::object());
    all[key] = t;
    std::string line;
    for (const auto& [k, v] : t.items()) {
      if (k == "total" || !v.is_number()) continue;
      line += (line.empty() ? "" : ", ") + v.dump() + " " + k;
    }
    text += std::string(label) + line + "\n";
  };
  totals("licenses:  ", pool, "licenses");
  totals("nodes:     ", nodes, "nodes");
  for (char& ch : text) {  // names are validated labels; keep the terminal safe regardless
    if (static_cast<unsigned char>(ch) < 0x20 && ch != '\n') ch = '?';
  }
  return Print(out, c, all, text);
}

int Events(const Command& c, Api& api, Sleeper& sleeper, std::ostream& out, std::ostream& err) {
  uint64_t cursor = 0;
  if (c.after) {
    cursor = *c.after;
  } else {
    Outcome head = Get(api, "GET", "/api/events?limit=0");
    if (head.code != kOk) return err << "tokenmgr events: " << head.message << "\n", head.code;
    const uint64_t last = head.body.value("last_seq", uint64_t{0});
    cursor = last > c.limit ? last - c.limit : 0;
  }
  bool header = c.output != "json";
  for (;;) {
    Outcome o = Get(api, "GET", "/api/events?after=" + std::to_string(cursor) +
                                    "&limit=" + std::to_string(c.follow ? 1000 : c.limit));
    if (o.code != kOk) return err << "tokenmgr events: " << o.message << "\n", o.code;
    Table t({"SEQ", "TIME", "KIND", "LICENSE", "NODE", "TOKEN", "BY", "DETAIL"});
    for (const json& e : o.body.value("events", json::array())) {
      if (c.output == "json") {
        out << e.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
      } else {
        t.Row({Str(e, "seq"), Utc(Num(e, "time_ms")), Str(e, "kind"), Str(e, "license"),
               Str(e, "node"), Num(e, "token") ? Str(e, "token") : "", Str(e, "actor"),
               Str(e, "detail")});
      }
    }
    if (c.output != "json") {
      std::string text = t.Render();
      if (!header) text = text.substr(text.find('\n') + 1);  // the header once
      if (header || text.size() > 0) out << text;
      header = false;
    }
    out.flush();
    cursor = o.body.value("next", cursor);
    if (!c.follow) return kOk;  // at most --limit events
    if (!o.body.value("more", false) && !sleeper.SleepFor(std::chrono::seconds(1))) return kOk;
  }
}

int Usage_(const Command& c, Api& api, std::ostream& out, std::ostream& err) {
  std::string q = "/api/usage?format=" + std::string(c.output == "csv" ? "csv" : "json");
  if (!c.from.empty()) q += "&from=" + PercentEncode(c.from);
  if (!c.to.empty()) q += "&to=" + PercentEncode(c.to);
  Outcome o = Get(api, "GET", q);
  if (o.code != kOk) return err << "tokenmgr usage: " << o.message << "\n", o.code;
  if (c.output == "csv") return out << o.body.get<std::string>(), kOk;
  Table t({"KIND", "NAME", "HELD", "HOLDS"});
  for (const char* kind : {"nodes", "licenses"}) {
    for (const json& r : o.body.value(kind, json::array())) {
      t.Row({kind == std::string("nodes") ? "node" : "license", Str(r, "name"),
             ShortDuration(static_cast<long long>(r.value("held_seconds", 0.0) * 1000)),
             Str(r, "holds")});
    }
  }
  return Print(out, c, o.body, t.Render());
}

int Admin(const Command& c, Api& api, std::ostream& out, std::ostream& err) {
  const bool node = c.verb == "cordon" || c.verb == "uncordon";
  const std::string path = std::string(node ? "/api/nodes/" : "/api/licenses/") +
                           PercentEncode(c.name) + "/" + c.verb;
  Outcome o = Get(api, "POST", path);
  if (o.code == kNotFound) {
    o.message += node ? " (see `tokenmgr nodes` for the node names)"
                      : " (see `tokenmgr licenses` for the license names)";
  }
  if (o.code != kOk) return err << "tokenmgr " << c.verb << ": " << o.message << "\n", o.code;
  if (c.output == "json") return Print(out, c, o.body, "");
  out << (node ? "node/" : "license/") << TerminalSafe(c.name) << " " << c.verb
      << (c.verb.back() == 'e' ? "d" : "ed") << "\n";
  return kOk;
}

}  // namespace

int RunOne(const Command& c, Api& api, const Clock& clock, Sleeper& sleeper, std::ostream& out,
           std::ostream& err);

bool IsCommand(std::string_view word) {
  return std::find(std::begin(kVerbs), std::end(kVerbs), word) != std::end(kVerbs);
}

std::optional<std::vector<std::string>> AsCommandLine(const std::vector<std::string>& words) {
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (w == "--url" || w == "--token-file" || w == "-o" || w == "--output") {
      ++i;  // its value
      continue;
    }
    if (w.rfind("--url=", 0) == 0 || w.rfind("--token-file=", 0) == 0 ||
        w.rfind("--output=", 0) == 0) {
      continue;
    }
    if (w.empty() || w[0] == '-') return std::nullopt;  // the server's flags
    std::vector<std::string> line{w};
    line.insert(line.end(), words.begin(), words.begin() + static_cast<ptrdiff_t>(i));
    line.insert(line.end(), words.begin() + static_cast<ptrdiff_t>(i) + 1, words.end());
    return line;
  }
  return std::nullopt;
}

namespace {

// The verb `word` was probably meant to be (a typo: at most two edits away), or "".
std::string_view Closest(std::string_view word) {
  std::string_view best;
  size_t best_d = 3;
  for (std::string_view v : kVerbs) {
    std::vector<size_t> row(v.size() + 1);
    for (size_t j = 0; j <= v.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= word.size(); ++i) {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= v.size(); ++j) {
        size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (word[i - 1] == v[j - 1] ? 0 : 1)});
        diag = up;
      }
    }
    if (row[v.size()] < best_d) {
      best_d = row[v.size()];
      best = v;
    }
  }
  return best;
}

}  // namespace

std::string Usage() {
  return "usage: tokenmgr COMMAND [flags]\n"
         "  status                   the lock, license and node totals\n"
         "  licenses                 every license in the pool and who holds it\n"
         "  nodes                    every node that runs an agent (waiting ones first)\n"
         "  events [-f] [--after N] [--limit N]   the history, newest last\n"
         "  usage [--from T] [--to T] [-o csv]    who held licenses for how long\n"
         "  cordon NODE | uncordon NODE            take a node's license away / give it back\n"
         "  disable LICENSE | enable LICENSE       retire a license / bring it back\n"
         "flags: -o table|json (csv for usage), --url URL (TOKENMGR_URL), --token-file FILE\n"
         "       (AUTH_TOKEN_FILE); T: 2026-12-01T00:00:00Z, Unix seconds, or -24h / -7d\n";
}

StatusOr<Command> ParseCommand(const std::vector<std::string>& words) {
  if (words.empty() || !IsCommand(words[0])) {
    std::string_view guess = words.empty() ? std::string_view() : Closest(words[0]);
    return InvalidArgument("unknown command '" + (words.empty() ? "" : TerminalSafe(words[0])) +
                           "'" + (guess.empty() ? "" : " (did you mean '" + std::string(guess) +
                                                           "'?)") +
                           "\n" + Usage());
  }
  Command c;
  c.verb = words[0];
  std::vector<std::string> positional;
  for (size_t i = 1; i < words.size(); ++i) {
    std::string w = words[i], value;
    bool has_value = false;
    if (auto eq = w.find('='); w.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = w.substr(eq + 1);
      w = w.substr(0, eq);
      has_value = true;
    }
    auto next = [&]() -> StatusOr<std::string> {
      if (has_value) return value;
      if (i + 1 >= words.size()) return InvalidArgument(w + " needs a value\n" + Usage());
      return words[++i];
    };
    auto number = [&](uint64_t max) -> StatusOr<uint64_t> {
      auto v = next();
      if (!v.ok()) return v.status();
      auto n = ParseWholeNumber(*v, w, static_cast<int64_t>(max));
      if (!n.ok()) return n.status();
      return static_cast<uint64_t>(*n);
    };
    if (w == "-o" || w == "--output") {
      auto v = next();
      if (!v.ok()) return v.status();
      c.output = *v;
    } else if (w == "-f" || w == "--follow") {
      c.follow = true;
    } else if (w == "--after") {
      auto n = number(INT64_MAX);
      if (!n.ok()) return n.status();
      c.after = *n;
    } else if (w == "--limit") {
      auto n = number(1000);
      if (!n.ok()) return n.status();
      c.limit = *n;
    } else if (w == "--from" || w == "--to") {
      auto v = next();
      if (!v.ok()) return v.status();
      (w == "--from" ? c.from : c.to) = *v;
    } else if (w == "--url" || w == "--token-file") {
      auto v = next();
      if (!v.ok()) return v.status();
      (w == "--url" ? c.url : c.token_file) = *v;
    } else if (!w.empty() && w[0] == '-') {
      return InvalidArgument("unknown flag '" + TerminalSafe(w) + "'\n" + Usage());
    } else {
      positional.push_back(w);
    }
  }
  if (c.output != "table" && c.output != "json" && !(c.output == "csv" && c.verb == "usage")) {
    return InvalidArgument("-o must be table or json" +
                           std::string(c.verb == "usage" ? " or csv" : "") + ", got '" +
                           TerminalSafe(c.output) + "'");
  }
  if ((c.follow || c.after) && c.verb != "events") {
    return InvalidArgument("--follow and --after are for `tokenmgr events`");
  }
  if ((!c.from.empty() || !c.to.empty()) && c.verb != "usage") {
    return InvalidArgument("--from and --to are for `tokenmgr usage`");
  }
  if (TakesName(c.verb)) {
    const char* what = c.verb == "cordon" || c.verb == "uncordon" ? "NODE" : "LICENSE";
    if (positional.size() != 1) {
      return InvalidArgument("usage: tokenmgr " + c.verb + " " + what);
    }
    c.name = positional[0];
    if (Status s = ValidateLabel(c.name, what == std::string("NODE") ? "node" : "license");
        !s.ok()) {
      return InvalidArgument(s.message());
    }
  } else if (!positional.empty()) {
    return InvalidArgument("tokenmgr " + c.verb + " takes no argument, got '" +
                           TerminalSafe(positional[0]) + "'");
  }
  return c;
}

int Run(const Command& c, Api& api, const Clock& clock, Sleeper& sleeper, std::ostream& out,
        std::ostream& err) {
  try {
    return RunOne(c, api, clock, sleeper, out, err);
  } catch (const json::exception& e) {  // a field of an unexpected type in tokenmgr's answer
    err << "tokenmgr " << c.verb << ": tokenmgr's answer has an unexpected shape (" << e.what()
        << "); is --url pointing at tokenmgr?\n";
    return kFailed;
  }
}

int RunOne(const Command& c, Api& api, const Clock& clock, Sleeper& sleeper, std::ostream& out,
           std::ostream& err) {
  if (c.verb == "status") return Status_(c, api, out, err);
  if (c.verb == "licenses") return Licenses(c, api, clock, out, err);
  if (c.verb == "nodes") return Nodes(c, api, clock, out, err);
  if (c.verb == "events") return Events(c, api, sleeper, out, err);
  if (c.verb == "usage") return Usage_(c, api, out, err);
  if (TakesName(c.verb)) return Admin(c, api, out, err);
  err << Usage();
  return kUsage;
}

}  // namespace lm::cli
