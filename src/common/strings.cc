#include "common/strings.h"

#include <string>

namespace lm {

StatusOr<int64_t> ParseWholeNumber(std::string_view text, std::string_view what, int64_t max) {
  std::string name(what);
  if (text.empty()) return InvalidArgument(name + " is empty; expected a whole number");
  if (text.size() > 18) {
    return InvalidArgument(name + " is too large; expected a whole number at most " +
                           std::to_string(max));
  }
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return InvalidArgument(name + " must be a whole non-negative number, got '" +
                             std::string(text.substr(0, 32)) + "'");
    }
    value = value * 10 + (c - '0');
  }
  if (value > max) {
    return InvalidArgument(name + " is " + std::to_string(value) + ", above its maximum of " +
                           std::to_string(max));
  }
  return value;
}

Status ValidateLabel(std::string_view label, std::string_view what) {
  std::string name(what);
  if (label.empty()) return InvalidArgument(name + " is empty");
  if (label.size() > kMaxLabelLength) {
    return InvalidArgument(name + " is longer than " + std::to_string(kMaxLabelLength) +
                           " characters");
  }
  for (char c : label) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == ':';
    if (!ok) return InvalidArgument(name + " may contain only letters, digits and . _ - :");
  }
  return Status::Ok();
}

std::string Redact(std::string_view secret) {
  if (secret.size() <= 8) return "…";
  return std::string(secret.substr(0, 8)) + "…";
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  size_t n = a.size() < b.size() ? a.size() : b.size();
  for (size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string JsonEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  JsonEscapeInto(s, [&out](std::string_view piece) { out.append(piece); });
  return out;
}

namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

StatusOr<std::string> PercentDecode(std::string_view s) {
  if (s.find('%') == std::string_view::npos) {  // the usual case: nothing to decode
    if (s.find('\0') != std::string_view::npos) return InvalidArgument("NUL in URL");
    return std::string(s);
  }
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return InvalidArgument("bad % escape");
      int hi = HexValue(s[i + 1]);
      int lo = HexValue(s[i + 2]);
      if (hi < 0 || lo < 0) return InvalidArgument("bad % escape");
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') return InvalidArgument("NUL in URL");
    out += c;
  }
  return out;
}

std::string PercentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' ||
                        s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace lm
