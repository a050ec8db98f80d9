#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "client/tokenmgr_client.h"
#include "common/process_metrics.h"
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
  out.authority = hostport;
  out.port = "80";
  std::optional<std::string> port_text;  // after the host's ':', when there is one
  if (!hostport.empty() && hostport[0] == '[') {
    auto close = hostport.find(']');
    if (close == std::string::npos) return InvalidArgument("TOKENMGR_URL: '[' without ']'");
    out.host = hostport.substr(1, close - 1);
    std::string_view after = std::string_view(hostport).substr(close + 1);
    if (!after.empty() && after[0] != ':') {
      return InvalidArgument("TOKENMGR_URL: expected ':port' after ']'");
    }
    if (!after.empty()) port_text = std::string(after.substr(1));
    // Only hex digits, ':' and '.': no zone id ("%eth0"), which boost would take with any
    // characters after the '%', and which would then go into the Host header.
    boost::system::error_code ec;
    if (out.host.find_first_not_of("0123456789abcdefABCDEF:.") == std::string::npos) {
      net::ip::make_address_v6(out.host, ec);
    } else {
      ec = boost::asio::error::invalid_argument;
    }
    if (ec) {
      return InvalidArgument("TOKENMGR_URL: '" + out.host.substr(0, 64) +
                             "' in brackets is not an IPv6 address");
    }
  } else {
    auto colon = hostport.rfind(':');
    out.host = hostport.substr(0, colon);
    if (colon != std::string::npos) port_text = hostport.substr(colon + 1);
    if (out.host.find(':') != std::string::npos) {
      return InvalidArgument(
          "TOKENMGR_URL: an IPv6 address needs brackets, e.g. http://[::1]:8080");
    }
    for (char c : out.host) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '-';
      if (!ok) return InvalidArgument("TOKENMGR_URL host has bad characters");
    }
  }
  if (port_text) out.port = *port_text;
  auto port = ParseWholeNumber(out.port, "TOKENMGR_URL port", 65535);
  if (!port.ok() || *port == 0) return InvalidArgument("TOKENMGR_URL has a bad port");
  if (out.host.empty()) return InvalidArgument("TOKENMGR_URL has no host");
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
  if (status == 401) return Unauthenticated("tokenmgr answered HTTP 401: " + error_text());
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

StatusOr<console::Directives> ParseReportResponse(int status, const std::string& body) {
  auto what = [&] { return "tokenmgr answered the node report with HTTP " + std::to_string(status); };
  switch (status) {
    case 200:
      break;
    case 400:
    case 413:
      return InvalidArgument(what() + ": " + body.substr(0, 200));
    case 401:
      return Unauthenticated(what() + ": check TOKENMGR_AUTH_TOKEN_FILE");
    case 404:
      return NotFound(what() + ": this tokenmgr has no operator's console (an older version)");
    default:
      return Unavailable(what());
  }
  auto directives = console::ParseDirectives(body);
  if (!directives.ok()) {
    return Unavailable("tokenmgr's answer to the node report is garbled: " +
                       directives.status().message());
  }
  return directives;
}

struct HttpTokenmgrClient::Transport {
  net::io_context io;
  std::optional<net::ip::address> numeric_host;  // an IP literal needs no resolver
  std::unique_ptr<beast::tcp_stream> kept;        // open connection from the last Lock
};

HttpTokenmgrClient::HttpTokenmgrClient(ParsedUrl url, std::optional<std::string> auth,
                                       std::chrono::milliseconds t)
    : url_(std::move(url)), auth_(std::move(auth)), io_timeout_(t),
      transport_(std::make_unique<Transport>()) {
  beast::error_code ec;
  auto address = net::ip::make_address(url_.host, ec);
  if (!ec) transport_->numeric_host = address;
}

HttpTokenmgrClient::~HttpTokenmgrClient() = default;

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
  transport_->io.stop();
}

StatusOr<HttpTokenmgrClient::Reply> HttpTokenmgrClient::Call(const std::string& method,
                                                             const std::string& target,
                                                             std::chrono::milliseconds timeout,
                                                             Conn conn, bool keep_alive,
                                                             const std::string& body) {
  Transport& t = *transport_;
  std::unique_ptr<beast::tcp_stream> stream;
  if (conn == Conn::kReuse) stream = std::move(t.kept);
  t.kept.reset();  // anything else kept is closed: a Lock always opens a new connection
  bool reused = stream != nullptr;
  bhttp::request<bhttp::string_body> req(bhttp::string_to_verb(method), target, 11);
  req.set(bhttp::field::host, url_.authority);
  if (!body.empty()) {
    req.set(bhttp::field::content_type, "application/json");
    req.body() = body;
  }
  req.prepare_payload();
  req.set(bhttp::field::user_agent, "license-holder/" + std::string(BuildVersion()));
  if (auth_) req.set(bhttp::field::authorization, "Bearer " + *auth_);
  req.keep_alive(keep_alive);
  for (;;) {
    if (!stream) {
      stream = std::make_unique<beast::tcp_stream>(t.io);
      ++connections_opened_;
    }
    {
      // Under mu_, so an Abort() either is seen here or stops the run() below.
      std::lock_guard<std::mutex> l(mu_);
      if (aborted_) return Unavailable("aborted");
      t.io.restart();
    }
    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(64 * 1024);
    parser.header_limit(16 * 1024);
    beast::error_code result;
    bool done = false;
    auto finish = [&](beast::error_code ec) {
      result = ec;
      done = true;
    };
    auto exchange = [&] {
      bhttp::async_write(*stream, req, [&](beast::error_code ec, size_t) {
        if (ec) return finish(ec);
        bhttp::async_read(*stream, buffer, parser, [&](beast::error_code ec, size_t) { finish(ec); });
      });
    };
    auto on_connect = [&](beast::error_code ec) {
      if (ec) return finish(ec);
      exchange();
    };
    tcp::resolver resolver(t.io);
    stream->expires_after(timeout);
    if (reused) {
      exchange();
    } else if (t.numeric_host) {
      stream->async_connect(tcp::endpoint(*t.numeric_host, static_cast<uint16_t>(std::stoi(url_.port))),
                            on_connect);
    } else {
      resolver.async_resolve(url_.host, url_.port,
                             [&](beast::error_code ec, tcp::resolver::results_type r) {
                               if (ec) return finish(ec);
                               stream->async_connect(
                                   r, [&](beast::error_code ec, const tcp::endpoint&) { on_connect(ec); });
                             });
    }
    t.io.run();
    {
      std::lock_guard<std::mutex> l(mu_);
      if (aborted_) return Unavailable("aborted");
    }
    if (!done) return Unavailable("tokenmgr call interrupted");
    if (result && reused && !parser.got_some()) {
      // The kept connection was closed under us before any reply: once more on a new one.
      stream.reset();
      reused = false;
      continue;
    }
    if (result) {
      return Unavailable("tokenmgr " + url_.authority + ": " + result.message());
    }
    if (keep_alive && parser.get().keep_alive()) t.kept = std::move(stream);
    return Reply{static_cast<int>(parser.get().result_int()), parser.get().body()};
  }
}

StatusOr<LockGrant> HttpTokenmgrClient::Lock(std::chrono::seconds wait, std::chrono::seconds ttl,
                                             const std::string& holder) {
  std::string target = url_.base_path + "/lock/" + std::to_string(wait.count()) +
                       "?ttl=" + std::to_string(ttl.count()) + "&holder=" + holder;
  // A new connection, kept open after a grant for the Release inside the critical section.
  auto reply = Call("GET", target, io_timeout_ + wait, Conn::kNew, /*keep_alive=*/true);
  if (!reply.ok()) return reply.status();
  return ParseLockResponse(reply->status, reply->body);
}

std::string ServerRoot(const ParsedUrl& url) {
  std::string_view p = url.base_path;
  for (std::string_view api : {"/api/token", "/api/tokenmgr", "/api"}) {
    if (p.size() >= api.size() && p.substr(p.size() - api.size()) == api) {
      return std::string(p.substr(0, p.size() - api.size()));
    }
  }
  return std::string(p);
}

StatusOr<ApiReply> HttpTokenmgrClient::Api(const std::string& method, const std::string& path,
                                           const std::string& body) {
  auto reply = Call(method, ServerRoot(url_) + path, io_timeout_, Conn::kReuse,
                    /*keep_alive=*/true, body);
  if (!reply.ok()) return reply.status();
  return ApiReply{reply->status, std::move(reply->body)};
}

StatusOr<console::Directives> HttpTokenmgrClient::Report(const std::string& node,
                                                         const console::AgentReport& report,
                                                         std::chrono::milliseconds timeout) {
  auto reply = Call("PUT", ServerRoot(url_) + "/api/nodes/" + PercentEncode(node), timeout,
                    Conn::kNew, /*keep_alive=*/false, console::AgentReportJson(report));
  if (!reply.ok()) return reply.status();
  return ParseReportResponse(reply->status, reply->body);
}

Status HttpTokenmgrClient::Release(const std::string& id) {
  auto reply = Call("POST", url_.base_path + "/release/" + id, io_timeout_, Conn::kReuse,
                    /*keep_alive=*/false);
  if (!reply.ok()) return reply.status();
  if (reply->status == 200) return Status::Ok();
  if (reply->status == 404) return NotFound("tokenmgr: lock id no longer held");
  return Unavailable("tokenmgr release answered HTTP " + std::to_string(reply->status));
}

}  // namespace lm::client
