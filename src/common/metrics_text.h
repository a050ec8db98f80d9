// MetricsText: builds a Prometheus text exposition, one home for how a series is written (header,
// label escaping, number format). Thread-compatible; one per scrape.
//
//   MetricsText m;
//   m.Counter("tokenmgr_lock_grants_total", "Locks granted.", 12);
//   m.Family("tokenmgr_pool_licenses", "gauge", "Licenses by state.");
//   m.Sample("tokenmgr_pool_licenses", {{"state", "free"}}, 3);
//   std::string body = m.Take();
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "common/histogram.h"

namespace lm {

class MetricsText {
 public:
  using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

  // A family of one unlabelled series.
  void Counter(std::string_view name, std::string_view help, uint64_t v);
  void Gauge(std::string_view name, std::string_view help, double v);
  // A family's header; then one Sample per series.
  void Family(std::string_view name, std::string_view type, std::string_view help);
  void Sample(std::string_view name, Labels labels, double v);
  // A sample of a counter: the count in full digits (Sample writes 100000 as 1e+05).
  void CountSample(std::string_view name, Labels labels, uint64_t v);
  void Histogram(const lm::Histogram& h, std::string_view name, std::string_view help);
  // Text built elsewhere, appended as it is.
  void Append(std::string_view text) { out_ += text; }

  const std::string& text() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  void SampleText(std::string_view name, Labels labels, std::string_view value);
  std::string out_;
};

}  // namespace lm
