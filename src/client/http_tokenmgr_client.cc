#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "client/tokenmgr_client.h"
#include "common/strings.h"

namespace lm::client {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

StatusOr<ParsedUrl> ParseHttpUrl(const std::string& url) {
  constexpr std::string_view kScheme = "http://";
  if (url.size() > 2048 || url.compare(0, kScheme.size(), kScheme) != 0) {
    return InvalidArgument("TOKENMGR_URL must start with http:// (got '" + url.substr(0, 64) + "')");
  }
  std::string rest = url.substr(kScheme.size());
  auto slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.pop_back();
  ParsedUrl out;
  auto colon = hostport.rfind(':');
  if (colon != std::string::npos && hostport.find(']') == std::string::npos) {
    out.host = hostport.substr(0, colon);
    out.port = hostport.substr(colon + 1);
  } else {
    out.host = hostport;
    out.port = "80";
  }
  auto port = ParseWholeNumber(out.port, "TOKENMGR_URL port", 65535);
  if (!port.ok() || *port == 0) return InvalidArgument("TOKENMGR_URL has a bad port");
  if (out.host.empty()) return InvalidArgument("TOKENMGR_URL has no host");
  for (char c : out.host) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-';
    if (!ok) return InvalidArgument("TOKENMGR_URL host has bad characters");
  }
  for (char c : path) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == '?' || c == '#' || c == 0x7f) {
      return InvalidArgument("TOKENMGR_URL path has bad characters");
    }
  }
  out.base_path = path;
  return out;
}

StatusOr<LockGrant> ParseLockResponse(int status, const std::string& body) {
  using nlohmann::json;
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  auto error_text = [&]() -> std::string {
    if (j.is_object()) {
      auto e = j.find("Error");
      if (e != j.end() && e->is_string()) return e->get<std::string>().substr(0, 200);
    }
    return "HTTP " + std::to_string(status);
  };
  if (status == 409) return FailedPrecondition("lock busy: " + error_text());
  if (status != 200) return Unavailable("tokenmgr answered " + error_text());
  if (!j.is_object()) return Unavailable("tokenmgr answered garbage");
  auto id = j.find("id");
  auto token = j.find("token");
  if (id == j.end() || !id->is_string() || id->get<std::string>().empty() ||
      id->get<std::string>().size() > 64) {
    return Unavailable("tokenmgr grant has no usable id");
  }
  if (token == j.end() || !token->is_number_unsigned() || token->get<uint64_t>() == 0) {
    return Unavailable("tokenmgr grant has no fencing token (is this the seed's tokenmgr?)");
  }
  LockGrant g;
  g.id = id->get<std::string>();
  g.token = token->get<uint64_t>();
  if (auto t = j.find("ttl"); t != j.end() && t->is_number_integer()) g.ttl_s = t->get<int64_t>();
  if (auto e = j.find("expires_in_ms"); e != j.end() && e->is_number_integer()) {
    g.expires_in_ms = e->get<int64_t>();
  }
  return g;
}

StatusOr<std::unique_ptr<HttpTokenmgrClient>> HttpTokenmgrClient::Create(
    const std::string& base_url, std::optional<std::string> auth_token,
    std::chrono::milliseconds io_timeout) {
  auto url = ParseHttpUrl(base_url);
  if (!url.ok()) return url.status();
  return std::unique_ptr<HttpTokenmgrClient>(
      new HttpTokenmgrClient(std::move(*url), std::move(auth_token), io_timeout));
}

void HttpTokenmgrClient::Abort() {
  std::lock_guard<std::mutex> l(mu_);
  aborted_ = true;
  if (current_) current_->stop();
}

StatusOr<HttpTokenmgrClient::Reply> HttpTokenmgrClient::Call(const std::string& method,
                                                             const std::string& target,
                                                             std::chrono::milliseconds timeout) {
  net::io_context io;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (aborted_) return Unavailable("aborted");
    current_ = &io;
  }
  tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64 * 1024);
  parser.header_limit(16 * 1024);
  bhttp::request<bhttp::empty_body> req(bhttp::string_to_verb(method), target, 11);
  req.set(bhttp::field::host, url_.host);
  req.set(bhttp::field::user_agent, "license-holder/1.0.0");
  if (auth_) req.set(bhttp::field::authorization, "Bearer " + *auth_);
  req.keep_alive(false);
  beast::error_code result;
  bool done = false;
  stream.expires_after(timeout);
  resolver.async_resolve(url_.host, url_.port, [&](beast::error_code ec, tcp::resolver::results_type r) {
    if (ec) {
      result = ec;
      done = true;
      return;
    }
    stream.async_connect(r, [&](beast::error_code ec, const tcp::endpoint&) {
      if (ec) {
        result = ec;
        done = true;
        return;
      }
      bhttp::async_write(stream, req, [&](beast::error_code ec, size_t) {
        if (ec) {
          result = ec;
          done = true;
          return;
        }
        bhttp::async_read(stream, buffer, parser, [&](beast::error_code ec, size_t) {
          result = ec;
          done = true;
        });
      });
    });
  });
  io.run();
  {
    std::lock_guard<std::mutex> l(mu_);
    current_ = nullptr;
    if (aborted_) return Unavailable("aborted");
  }
  if (!done) return Unavailable("tokenmgr call interrupted");
  if (result) {
    return Unavailable("tokenmgr " + url_.host + ":" + url_.port + ": " + result.message());
  }
  return Reply{static_cast<int>(parser.get().result_int()), parser.get().body()};
}

StatusOr<LockGrant> HttpTokenmgrClient::Lock(std::chrono::seconds wait, std::chrono::seconds ttl,
                                             const std::string& holder) {
  std::string target = url_.base_path + "/lock/" + std::to_string(wait.count()) +
                       "?ttl=" + std::to_string(ttl.count()) + "&holder=" + holder;
  auto reply = Call("GET", target, io_timeout_ + wait);
  if (!reply.ok()) return reply.status();
  return ParseLockResponse(reply->status, reply->body);
}

Status HttpTokenmgrClient::Release(const std::string& id) {
  auto reply = Call("POST", url_.base_path + "/release/" + id, io_timeout_);
  if (!reply.ok()) return reply.status();
  if (reply->status == 200) return Status::Ok();
  if (reply->status == 404) return NotFound("tokenmgr: lock id no longer held");
  return Unavailable("tokenmgr release answered HTTP " + std::to_string(reply->status));
}

}  // namespace lm::client
