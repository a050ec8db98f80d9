// DescribeStateFile: the embedded store's state file as JSON for operators (`tokenmgr state
// show FILE`): which format and slot was used, the last token, the token tokenmgr would hand
// out next if started now, the lease (its id redacted) and the torn slots skipped.
// Thread-compatible (a pure function of the bytes and the time given).
//
//   StatusOr<std::string> text = DescribeStateFile(ReadSmallFile(p, ...), p, clock.WallNow());
//   // DATA_LOSS (no usable slot, hostile content): the message names what is wrong.
#pragma once

#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"

namespace lm::store {

// `content` is the whole file; `path` is only shown. Pretty-printed JSON, newline-terminated.
StatusOr<std::string> DescribeStateFile(std::string_view content, const std::string& path,
                                        WallTime now);

}  // namespace lm::store
