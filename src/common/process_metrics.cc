#include "common/process_metrics.h"

#include <chrono>

#include "common/histogram.h"
#include "common/strings.h"

#ifndef LM_VERSION
#define LM_VERSION "unknown"
#endif

namespace lm {

namespace {
const double kStartTimeSeconds =
    std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}  // namespace

std::string_view BuildVersion() { return LM_VERSION; }

double ProcessStartTimeSeconds() { return kStartTimeSeconds; }

std::string RenderProcessMetrics(std::string_view program) {
  std::string name = std::string(program) + "_build_info";
  std::string out = MetricHeader(name, "gauge", "Always 1; the labels say which build runs.");
  // Label values are escaped as in JSON strings, which covers Prometheus' \\, \" and \n.
  out += name + "{version=\"" + JsonEscape(BuildVersion()) + "\"} 1\n";
  out += MetricHeader("process_start_time_seconds", "gauge",
                      "Start time of the process since the Unix epoch in seconds.");
  out += "process_start_time_seconds " + FormatMetricValue(ProcessStartTimeSeconds()) + "\n";
  return out;
}

}  // namespace lm
