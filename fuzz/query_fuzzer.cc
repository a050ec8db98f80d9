// The request-target parameters: ParseQuery (and through it PercentDecode), ParseWholeNumber
// (path timeouts, ttl=), ValidateLabel (holder=). Properties, not just "no crash":
//   - ParseQuery: at most 32 parameters, no NUL in any decoded key or value;
//   - PercentDecode: never longer than its input, and decode(encode(x)) == x;
//   - ParseWholeNumber: accepts exactly the all-digit strings <= max, with their value;
//   - ValidateLabel: accepts exactly 1..253 characters of [A-Za-z0-9._:-];
//   - ParseTarget: an accepted target gives a path that starts with '/', holds no NUL and has
//     as many segments as the raw path (an escape never adds a '/').
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/strings.h"
#include "http/message.h"
#include "http/query.h"

#include "fuzz_check.h"

namespace {


std::string EncodeAll(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    out += '%';
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  auto q = lm::http::ParseQuery(in);
  if (q.ok()) {
    Check(q->size() <= 32, "ParseQuery returned more than 32 parameters");
    for (const auto& [k, v] : *q) {
      Check(k.find('\0') == std::string::npos && v.find('\0') == std::string::npos,
            "ParseQuery let a NUL through");
    }
  }

  auto d = lm::PercentDecode(in);
  if (d.ok()) {
    Check(d->size() <= in.size(), "PercentDecode grew its input");
    auto again = lm::PercentDecode(EncodeAll(*d));
    Check(again.ok() && *again == *d, "PercentDecode(encode(x)) != x");
  }

  // max from the first bytes, so the bound itself is fuzzed too.
  int64_t max = 0;
  for (size_t i = 0; i < size && i < 2; ++i) max = max * 256 + data[i];
  max = max * 1000 + 999;
  auto n = lm::ParseWholeNumber(in, "n", max);
  bool digits = !in.empty() && in.size() <= 18 &&
                in.find_first_not_of("0123456789") == std::string_view::npos;
  if (digits) {
    int64_t v = std::strtoll(std::string(in).c_str(), nullptr, 10);
    Check(n.ok() == (v <= max), "ParseWholeNumber bound");
    if (n.ok()) Check(*n == v, "ParseWholeNumber value");
  } else {
    Check(!n.ok(), "ParseWholeNumber accepted a non-number");
  }

  std::string path, query;
  if (lm::http::ParseTarget(in, path, query).ok()) {
    Check(!path.empty() && path.front() == '/', "ParseTarget path does not start with '/'");
    Check(path.find('\0') == std::string::npos, "ParseTarget let a NUL into the path");
    if (!in.empty() && in.front() == '/') {
      std::string_view raw = in.substr(0, in.find('?'));
      Check(std::count(path.begin(), path.end(), '/') == std::count(raw.begin(), raw.end(), '/'),
            "ParseTarget changed the number of path segments");
    }
  }

  bool label_ok = lm::ValidateLabel(in, "label").ok();
  bool want = !in.empty() && in.size() <= lm::kMaxLabelLength &&
              in.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "0123456789._:-") == std::string_view::npos;
  Check(label_ok == want, "ValidateLabel");
  return 0;
}
