// The HTTP/1.1 codec alone (http/codec.h: RequestDecoder), without sockets: the input is decoded
// once in one piece and once cut in two at a place the input's first byte picks. Properties:
//   - both give the same requests and errors, so how TCP splits bytes cannot matter, except at
//     the header limit: Beast counts a header that came in pieces by the bytes it searched, so a
//     header a few bytes over the limit is accepted whole and refused (431) in pieces, and bytes
//     both malformed and over the limit are 400 whole and 431 in pieces;
//   - Decode never claims more bytes than it was given;
//   - every request is within the limits (header fields, body), its path starts with '/' and
//     holds no NUL; every error is 400, 413 or 431.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "http/codec.h"

namespace {

using lm::http::CodecLimits;
using lm::http::Decoded;
using lm::http::RequestDecoder;

constexpr CodecLimits kLimits{
    .max_header_bytes = 512, .max_header_count = 8, .max_body_bytes = 256};

std::string Describe(const lm::http::Request& r) {
  Check(!r.path.empty() && r.path[0] == '/', "request path does not start with '/'");
  Check(r.path.find('\0') == std::string::npos, "request path holds a NUL");
  Check(r.headers.size() <= kLimits.max_header_count, "more header fields than the limit");
  Check(r.body.size() <= kLimits.max_body_bytes, "body over the limit");
  return r.method + " " + r.target + " " + std::to_string(r.headers.size()) + " " + r.body;
}

// What the decoder makes of `in` fed as its first `first` bytes, then the rest, then end of
// stream.
std::vector<std::string> Decode(std::string_view in, size_t first) {
  RequestDecoder decoder(kLimits);
  std::vector<std::string> out;
  std::string pending;
  for (std::string_view part : {in.substr(0, first), in.substr(first)}) {
    pending.append(part);
    while (!pending.empty()) {
      Decoded d = decoder.Decode(boost::asio::buffer(pending));
      Check(d.used <= pending.size(), "Decode used more bytes than it was given");
      pending.erase(0, d.used);
      if (d.result == Decoded::kError) {
        Check(d.status == 400 || d.status == 413 || d.status == 431, "unexpected error status");
        out.push_back("error " + std::to_string(d.status));
        return out;
      }
      if (d.result == Decoded::kNeedMore) break;
      out.push_back(Describe(decoder.request()));
    }
  }
  Decoded d = decoder.Finish();
  if (d.result == Decoded::kError) {
    Check(d.status == 400 || d.status == 413 || d.status == 431, "unexpected error status");
    out.push_back("error " + std::to_string(d.status));
  }
  if (d.result == Decoded::kRequest) out.push_back(Describe(decoder.request()));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t cut = in.empty() ? 0 : data[0] % (in.size() + 1);
  std::vector<std::string> whole = Decode(in, in.size()), split = Decode(in, cut);
  if (whole == split) return 0;
  // Only the header limit may tell them apart (see the top): the same up to where one of them
  // ends in a 431, on input longer than the limit less the header's end.
  auto [w, p] = std::mismatch(whole.begin(), whole.end(), split.begin(), split.end());
  auto ends_in_431 = [](const std::vector<std::string>& v, auto it) {
    return it != v.end() && *it == "error 431" && it + 1 == v.end();
  };
  const bool at_limit =
      in.size() + 4 > kLimits.max_header_bytes && (ends_in_431(whole, w) || ends_in_431(split, p));
  Check(at_limit, "a split input decodes differently");
  return 0;
}
