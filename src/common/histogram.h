// A fixed-bucket histogram in seconds, rendered in Prometheus text format. Thread-compatible.
//
//   Histogram h({0.01, 0.1, 1, 10});
//   h.Observe(0.25);
//   out += h.Render("tokenmgr_lock_wait_seconds", "Time from request to grant.");
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lm {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double value);
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  std::string Render(std::string_view name, std::string_view help) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> buckets_;  // non-cumulative
  uint64_t count_ = 0;
  double sum_ = 0;
};

// "# HELP name help\n# TYPE name type\n"
std::string MetricHeader(std::string_view name, std::string_view type, std::string_view help);
// Formats a double the way Prometheus expects ("+Inf", "NaN", no locale), in the shortest form
// that reads back as the same double ("0.1", "0.0017329489999999999" never).
std::string FormatMetricValue(double v);
// A label value for the Prometheus text format: backslash, double quote and newline escaped.
std::string EscapeLabelValue(std::string_view v);

}  // namespace lm
