// Small, strict parsers and helpers for untrusted text (URLs, env vars, files). Thread-safe.
//
//   StatusOr<int64_t> s = ParseWholeNumber("30", "timeout", 300);  // 30
//   ParseWholeNumber("-1", "timeout", 300);   // INVALID_ARGUMENT naming "timeout"
//   Status v = ValidateLabel("gpu-node-7", "holder");
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace lm {

// Accepts only ASCII digits (no sign, no spaces, no hex), value <= max.
StatusOr<int64_t> ParseWholeNumber(std::string_view text, std::string_view what, int64_t max);

// Labels (holder names, node names, pod names): 1..253 chars of [A-Za-z0-9._:-].
inline constexpr size_t kMaxLabelLength = 253;
Status ValidateLabel(std::string_view label, std::string_view what);

// "3f2a9c1e…" — enough to correlate log lines, never enough to use as a capability.
std::string Redact(std::string_view secret);

// Compares in time independent of where the strings differ (length may leak).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// Escapes a string for inclusion in a JSON string literal (no surrounding quotes).
std::string JsonEscape(std::string_view s);

// JsonEscape for any output: calls append(std::string_view) with runs of plain characters and
// with each escape, in order. For writers that append into their own buffer (the log line).
template <typename Append>
void JsonEscapeInto(std::string_view s, Append&& append) {
  size_t plain = 0;  // start of the run of characters that need no escape
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    append(s.substr(plain, i - plain));
    plain = i + 1;
    switch (c) {
      case '"': append("\\\""); break;
      case '\\': append("\\\\"); break;
      case '\n': append("\\n"); break;
      case '\r': append("\\r"); break;
      case '\t': append("\\t"); break;
      default: {
        static constexpr char kHex[] = "0123456789abcdef";
        const char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
        append(std::string_view(u, 6));
      }
    }
  }
  append(s.substr(plain));
}

// Percent-decodes a URL component; '+' is kept literally. Fails on malformed escapes or NUL.
StatusOr<std::string> PercentDecode(std::string_view s);
// Percent-encodes everything but RFC 3986's unreserved characters (A-Z a-z 0-9 - . _ ~).
std::string PercentEncode(std::string_view s);

std::string_view Trim(std::string_view s);

}  // namespace lm
