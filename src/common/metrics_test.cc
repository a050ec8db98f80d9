// Metric text: number formatting, histograms and the per-process series.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "common/histogram.h"
#include "common/metrics_text.h"
#include "common/process_metrics.h"

namespace lm {
namespace {

TEST(FormatMetricValue, PrintsTheShortestTextThatReadsBackTheSame) {
  EXPECT_EQ(FormatMetricValue(0.1), "0.1");
  EXPECT_EQ(FormatMetricValue(0.001732949), "0.001732949");
  EXPECT_EQ(FormatMetricValue(300), "300");
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(100000), "100000");  // not 1e+05
  EXPECT_EQ(FormatMetricValue(1796083200123456.0), "1796083200123456");
  EXPECT_EQ(FormatMetricValue(-2), "-2");
  for (double v : {0.1, 1.0 / 3, 123456.789, 1e-9, 1e300, 1796000000.123}) {
    EXPECT_EQ(std::strtod(FormatMetricValue(v).c_str(), nullptr), v) << v;
  }
}

TEST(FormatMetricValue, SpellsInfinityAndNanAsPrometheusDoes) {
  EXPECT_EQ(FormatMetricValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatMetricValue(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(FormatMetricValue(0.0 / 0.0), "NaN");
}

TEST(Histogram, BucketBoundsPrintAsWritten) {
  Histogram h({0.001, 0.01, 0.1, 0.5});
  h.Observe(0.05);
  std::string out = h.Render("x_seconds", "help");
  EXPECT_NE(out.find("x_seconds_bucket{le=\"0.1\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{le=\"0.001\"} 0\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_sum 0.05\n"), std::string::npos) << out;
}

TEST(MetricsText, WritesCountersGaugesAndEscapedLabels) {
  MetricsText m;
  m.Counter("a_total", "A.", 3);
  m.Gauge("b", "B.", 0.5);
  m.Family("c", "gauge", "C.");
  m.Sample("c", {{"node", "n\"1\\\n"}, {"state", "free"}}, 2);
  EXPECT_EQ(m.Take(),
            "# HELP a_total A.\n# TYPE a_total counter\na_total 3\n"
            "# HELP b B.\n# TYPE b gauge\nb 0.5\n"
            "# HELP c C.\n# TYPE c gauge\nc{node=\"n\\\"1\\\\\\n\",state=\"free\"} 2\n");
}

TEST(ProcessMetrics, RendersBuildInfoWithTheVersionAndTheStartTime) {
  std::string out = RenderProcessMetrics("tokenmgr");
  EXPECT_FALSE(BuildVersion().empty());
  EXPECT_NE(out.find("# TYPE tokenmgr_build_info gauge\n"), std::string::npos) << out;
  EXPECT_NE(out.find("tokenmgr_build_info{version=\"" + std::string(BuildVersion()) + "\"} 1\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("# TYPE process_start_time_seconds gauge\n"), std::string::npos) << out;
  double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_LE(ProcessStartTimeSeconds(), now);
  EXPECT_GT(ProcessStartTimeSeconds(), now - 3600);
}

}  // namespace
}  // namespace lm
