// Logging set-up: spdlog to stderr, one line per event, as text or JSON. Call once from main().
//
//   LM_CHECK_OK(InitLogging("json"));
//   spdlog::info("granted lock to {} token={}", holder, token);
#pragma once

#include <string_view>

#include "common/status.h"

namespace lm {

// format: "text" or "json". Anything else is INVALID_ARGUMENT.
Status InitLogging(std::string_view format);

}  // namespace lm
