#include "common/process_metrics.h"

#include "common/metrics_text.h"
#include "common/real_time.h"

#ifndef LM_VERSION
#define LM_VERSION "unknown"
#endif

namespace lm {

namespace {
const double kStartTimeSeconds = UnixMillis(RealTimeSystem::Get().WallNow()) / 1000.0;
}  // namespace

std::string_view BuildVersion() { return LM_VERSION; }

double ProcessStartTimeSeconds() { return kStartTimeSeconds; }

std::string RenderProcessMetrics(std::string_view program) {
  MetricsText m;
  std::string name = std::string(program) + "_build_info";
  m.Family(name, "gauge", "Always 1; the labels say which build runs.");
  m.Sample(name, {{"version", BuildVersion()}}, 1);
  m.Gauge("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.",
          ProcessStartTimeSeconds());
  return m.Take();
}

}  // namespace lm
