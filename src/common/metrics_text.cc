#include "common/metrics_text.h"

namespace lm {

void MetricsText::Counter(std::string_view name, std::string_view help, uint64_t v) {
  Family(name, "counter", help);
  out_ += name;
  out_ += ' ';
  out_ += std::to_string(v);
  out_ += '\n';
}

void MetricsText::Gauge(std::string_view name, std::string_view help, double v) {
  Family(name, "gauge", help);
  Sample(name, {}, v);
}

void MetricsText::Family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += MetricHeader(name, type, help);
}

void MetricsText::Sample(std::string_view name, Labels labels, double v) {
  SampleText(name, labels, FormatMetricValue(v));
}

void MetricsText::CountSample(std::string_view name, Labels labels, uint64_t v) {
  SampleText(name, labels, std::to_string(v));
}

void MetricsText::SampleText(std::string_view name, Labels labels, std::string_view value) {
  out_ += name;
  if (labels.size() > 0) {
    char sep = '{';
    for (const auto& [k, value] : labels) {
      out_ += sep;
      out_ += k;
      out_ += "=\"";
      out_ += EscapeLabelValue(value);
      out_ += '"';
      sep = ',';
    }
    out_ += '}';
  }
  out_ += ' ';
  out_ += value;
  out_ += '\n';
}

void MetricsText::Histogram(const lm::Histogram& h, std::string_view name, std::string_view help) {
  out_ += h.Render(name, help);
}

}  // namespace lm
