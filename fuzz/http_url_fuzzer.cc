// TOKENMGR_URL (env, config): ParseHttpUrl.
//   - never crashes; an accepted URL has a non-empty host of [A-Za-z0-9.-] (or, in brackets, an
//     IPv6 address of [0-9A-Fa-f:.]), an authority of those and []:, a port 1..65535,
//     and a base path without spaces, controls, '?', '#' or a trailing '/' (it is pasted into
//     request lines, so it must not be able to inject one).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "client/tokenmgr_client.h"
#include "common/strings.h"

#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  auto u = lm::client::ParseHttpUrl(in);
  if (!u.ok()) return 0;
  Check(!u->host.empty(), "empty host");
  bool ipv6 = !u->authority.empty() && u->authority[0] == '[';
  Check(u->host.find_first_not_of(ipv6 ? "0123456789abcdefABCDEF:."
                                       : "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789.-") == std::string::npos,
        "host characters");
  // The authority goes into the Host header: host, brackets, ':' and the port only.
  Check(u->authority.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789.-:[]") == std::string::npos,
        "authority characters");
  auto port = lm::ParseWholeNumber(u->port, "port", 65535);
  Check(port.ok() && *port >= 1, "port");
  for (unsigned char c : u->base_path) {
    Check(c > 0x20 && c != 0x7f && c != '?' && c != '#', "base path characters");
  }
  Check(u->base_path.empty() || u->base_path.back() != '/', "trailing slash");
  Check(u->base_path.empty() || u->base_path.front() == '/', "base path not absolute");
  return 0;
}
