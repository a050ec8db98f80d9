// `tokenmgr state ...`: operator commands on the embedded store's state file, run instead of
// the server when argv[1] is "state". Today: `tokenmgr state show FILE` prints the file as JSON
// (store::DescribeStateFile). Thread-compatible.
//
//   if (app::IsStateCommand(argc, argv)) return app::RunStateCommand(argc, argv, std::cout,
//                                                                    std::cerr);
#pragma once

#include <ostream>
#include <string>

#include "common/status.h"

namespace lm::app {

bool IsStateCommand(int argc, const char* const* argv);

struct StateCommand {
  bool help = false;
  std::string file;  // for "show"
};
// INVALID_ARGUMENT with the usage when the words after "state" are not `show FILE` or --help.
StatusOr<StateCommand> ParseStateCommand(int argc, const char* const* argv);

// Exit codes: 0 printed, 1 the file is missing, unreadable or corrupt (message on `err`),
// 2 usage error.
int RunStateCommand(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace lm::app
