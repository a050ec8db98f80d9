// The series every program exports about itself in its /metrics (Prometheus text format), so
// dashboards can tell versions apart and see restarts. Thread-safe.
//
//   out += RenderProcessMetrics("tokenmgr");
//   // tokenmgr_build_info{version="1.0.0"} 1
//   // process_start_time_seconds 1796000000.123
#pragma once

#include <string>
#include <string_view>

namespace lm {

// The project's version (CMake's PROJECT_VERSION), e.g. "1.0.0".
std::string_view BuildVersion();

// When this process started, in seconds since the Unix epoch (taken during static
// initialisation, before main).
double ProcessStartTimeSeconds();

// "<program>_build_info{version=...} 1" and "process_start_time_seconds ...", each with its
// HELP and TYPE lines. `program` is a metric name prefix ("tokenmgr", "license_holder").
std::string RenderProcessMetrics(std::string_view program);

}  // namespace lm
