#include "common/histogram.h"

#include <charconv>
#include <cmath>
#include <string>
#include <system_error>

namespace lm {

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), buckets_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++buckets_[i];
  ++count_;
  sum_ += value;
}

std::string MetricHeader(std::string_view name, std::string_view type, std::string_view help) {
  std::string out = "# HELP ";
  out.append(name).append(" ").append(help).append("\n# TYPE ");
  out.append(name).append(" ").append(type).append("\n");
  return out;
}

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string FormatMetricValue(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  // The shortest text that reads back as the same double: 0.1 prints as "0.1", never
  // "0.10000000000000001", so a query for le="0.1" finds the bucket.
  char buf[64];
  // Whole numbers a double holds exactly print in full digits ("100000", not "1e+05").
  if (v == std::trunc(v) && std::fabs(v) < 9007199254740992.0) {
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(v));
    if (ec == std::errc()) return std::string(buf, end);
  }
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) return "NaN";  // cannot happen: 64 bytes hold any double
  return std::string(buf, end);
}

std::string Histogram::Render(std::string_view name, std::string_view help) const {
  std::string out = MetricHeader(name, "histogram", help);
  std::string base(name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += buckets_[i];
    out += base + "_bucket{le=\"" + FormatMetricValue(bounds_[i]) + "\"} " +
           std::to_string(cumulative) + "\n";
  }
  out += base + "_bucket{le=\"+Inf\"} " + std::to_string(count_) + "\n";
  out += base + "_sum " + FormatMetricValue(sum_) + "\n";
  out += base + "_count " + std::to_string(count_) + "\n";
  return out;
}

}  // namespace lm
