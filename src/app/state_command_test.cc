#include "app/state_command.h"

#include <gtest/gtest.h>

#include <sstream>
#include <vector>

namespace lm::app {
namespace {

StatusOr<StateCommand> Parse(std::vector<const char*> args) {
  args.insert(args.begin(), "tokenmgr");
  return ParseStateCommand(static_cast<int>(args.size()), args.data());
}

TEST(StateCommand, OnlyTheWordStateSelectsIt) {
  const char* state[] = {"tokenmgr", "state", "show", "f"};
  const char* server[] = {"tokenmgr", "--state-file", "f"};
  EXPECT_TRUE(IsStateCommand(4, state));
  EXPECT_FALSE(IsStateCommand(3, server));
  EXPECT_FALSE(IsStateCommand(1, state));
}

TEST(StateCommand, ShowTakesExactlyOneFile) {
  StatusOr<StateCommand> c = Parse({"state", "show", "/var/lib/tokenmgr/tokenmgr.state"});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->file, "/var/lib/tokenmgr/tokenmgr.state");
  EXPECT_FALSE(c->help);
  EXPECT_TRUE(Parse({"state", "--help"})->help);
  for (auto bad : std::vector<std::vector<const char*>>{{"state"},
                                                        {"state", "show"},
                                                        {"state", "show", "a", "b"},
                                                        {"state", "show", ""},
                                                        {"state", "dump", "f"}}) {
    StatusOr<StateCommand> r = Parse(bad);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("usage: tokenmgr state show FILE"), std::string::npos);
  }
  EXPECT_NE(Parse({"state", "dump", "f"}).status().message().find("'dump'"), std::string::npos);
}

TEST(StateCommand, AMissingFileIsExitOneWithThePath) {
  const char* args[] = {"tokenmgr", "state", "show", "/nonexistent/tokenmgr.state"};
  std::ostringstream out, err;
  EXPECT_EQ(RunStateCommand(4, args, out, err), 1);
  EXPECT_NE(err.str().find("/nonexistent/tokenmgr.state"), std::string::npos) << err.str();
  EXPECT_EQ(out.str(), "");
}

TEST(StateCommand, UsageErrorsAreExitTwo) {
  const char* args[] = {"tokenmgr", "state"};
  std::ostringstream out, err;
  EXPECT_EQ(RunStateCommand(2, args, out, err), 2);
  EXPECT_NE(err.str().find("usage"), std::string::npos);
}

}  // namespace
}  // namespace lm::app
