// tokenmgr's operator commands (issue 17): `tokenmgr status | licenses | nodes | events |
// usage | cordon NODE | uncordon NODE | disable LICENSE | enable LICENSE`, a client of
// tokenmgr's HTTP API, so `kubectl exec deploy/tokenmgr -- tokenmgr nodes` works in the
// FROM-scratch image. Aligned tables by default, `-o json` as kubectl does. Where the API's
// URL and token come from (flags, TOKENMGR_URL, AUTH_TOKEN_FILE) is decided in src/app.
// Thread-compatible.
//
//   StatusOr<Command> c = ParseCommand({"cordon", "gpu-7"});
//   int code = Run(*c, api, clock, sleeper, std::cout, std::cerr);  // ExitCode
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "client/tokenmgr_client.h"
#include "common/clock.h"
#include "common/sleeper.h"
#include "common/status.h"

namespace lm::cli {

// Documented in docs/operations.md ("The tokenmgr command line").
enum ExitCode : int {
  kOk = 0,
  kFailed = 1,       // tokenmgr answered with an error (5xx, an unexpected answer)
  kUsage = 2,        // bad command line
  kNotFound = 3,     // no such node or license (404)
  kDenied = 4,       // no or wrong token (401, 403)
  kUnreachable = 5,  // tokenmgr could not be reached
};

// The API, as the commands use it: `path` from the server's root ("/api/nodes").
class Api {
 public:
  virtual ~Api() = default;
  virtual StatusOr<client::ApiReply> Call(const std::string& method, const std::string& path,
                                          const std::string& body = "") = 0;
};

struct Command {
  std::string verb;              // status, licenses, nodes, events, usage, cordon, ...
  std::string name;              // NODE or LICENSE for cordon/uncordon/disable/enable
  std::string output = "table";  // table, json (and csv for usage)
  bool follow = false;           // events: keep printing new ones until interrupted
  std::optional<uint64_t> after; // events: start after this sequence number
  size_t limit = 50;             // events: how many (the newest ones, unless --after)
  std::string from, to;          // usage window, as tokenmgr parses it (see docs/api.md)
  std::optional<std::string> url, token_file;  // --url, --token-file (resolved in src/app)
};

// Whether `word` (the first argument) names one of these commands.
bool IsCommand(std::string_view word);
// The words after "tokenmgr" with the command word first, when they are a command line rather
// than the server's flags: the first word that is not a flag, after any of the flags every
// command takes (--url, --token-file, -o) written before it, as kubectl allows
// (`tokenmgr --url http://tm:8080 nodes`). nullopt: the server's flags (or none). An unknown
// word is returned too, so ParseCommand can say what to type.
std::optional<std::vector<std::string>> AsCommandLine(const std::vector<std::string>& words);
// The words after "tokenmgr". INVALID_ARGUMENT with a message that says what to type.
StatusOr<Command> ParseCommand(const std::vector<std::string>& words);
std::string Usage();

// Runs `c`; `sleeper` paces `events --follow` (stop it to end the command).
int Run(const Command& c, Api& api, const Clock& clock, Sleeper& sleeper, std::ostream& out,
        std::ostream& err);

}  // namespace lm::cli
