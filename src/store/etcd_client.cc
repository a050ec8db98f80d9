#include "store/etcd_client.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "store/etcd_record.h"

namespace lm::store {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

namespace {

// Maps a gateway error body {"code": <grpc code>, "message": ...} to our codes.
Status GatewayError(const std::string& endpoint, unsigned http_status, const std::string& body) {
  std::string message = body.substr(0, 200);
  int code = 0;
  json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    j = j["error"];  // a watch's error: {"error": {"grpc_code", "message", ...}}
    if (j.contains("grpc_code")) j["code"] = j["grpc_code"];
  }
  if (j.is_object()) {
    // Whatever the body holds, never an exception (a proxy may answer in its own shape).
    if (std::string m = JsonString(j, "message"); !m.empty()) {
      message = m;
    } else if (std::string e = JsonString(j, "error"); !e.empty()) {
      message = e;
    }
    code = static_cast<int>(JsonInt(j, "code"));
  }
  return EtcdErrorStatus(endpoint, "answered " + std::to_string(http_status), code, message);
}

// Asks the member to refuse a request, and to end a watch, while it has no leader, instead of
// letting a request wait for one (until our timeout) and a watch stay open and silent. This is
// the gRPC metadata "hasleader" that clientv3.WithRequireLeader sets; the JSON gateway forwards
// Grpc-Metadata-* headers as metadata. The refusal comes before the request is processed.
template <class Request>
void RequireLeader(Request& req) {
  req.set("Grpc-Metadata-hasleader", "true");
}

}  // namespace

std::string Base64Encode(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

StatusOr<std::string> Base64Decode(std::string_view in) {
  // As etcd's gateway writes it: padded. Lenient like Go's decoder on what follows the first
  // '=' and on missing padding; any other byte outside the alphabet is an error.
  in = in.substr(0, in.find('='));
  auto in_alphabet = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/';
  };
  if (!std::all_of(in.begin(), in.end(), in_alphabet)) {
    return InvalidArgument("bad base64 from etcd");
  }
  if (in.size() % 4 == 1) in.remove_suffix(1);  // 6 bits: no whole byte
  std::string padded(in);
  padded.append((4 - padded.size() % 4) % 4, '=');
  std::string out(padded.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(padded.data()),
                          static_cast<int>(padded.size()));
  if (n < 0) return InvalidArgument("bad base64 from etcd");
  // EVP_DecodeBlock counts the padding as zero bytes.
  out.resize(static_cast<size_t>(n) - (padded.size() - in.size()));
  return out;
}

int64_t JsonInt(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end()) return 0;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (...) {
      return 0;
    }
  }
  return 0;
}

std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    unsigned char last = static_cast<unsigned char>(prefix.back());
    if (last < 0xff) {
      prefix.back() = static_cast<char>(last + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // the whole key space
}

struct EtcdClient::WatchStream {
  std::shared_ptr<Conn> conn;
  http::request<http::string_body> request;
  http::response_parser<http::string_body> parser;
  std::string pending;  // streamed bytes not yet split into lines
  EventFn on_result;
  ClosedFn on_closed;
  std::function<void()> read_loop;  // holds the stream; cleared on Close to break the cycle
  // Beast keeps a reference to this; it only runs inside reads, while the stream is alive.
  std::function<size_t(uint64_t, std::string_view, beast::error_code&)> on_chunk;
  bool closed = false;
  void Close(Status why) {
    if (closed) return;
    closed = true;
    read_loop = nullptr;
    if (conn) {
      beast::error_code ignored;
      conn->tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
      conn->tcp().close();
    }
    ClosedFn f = std::move(on_closed);
    on_result = nullptr;
    if (f) f(std::move(why));
  }
};

StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(asio::io_context& io,
                                                        EtcdClientOptions options) {
  auto targets = ParseEtcdTargets(options.endpoints, options.tls, /*http2=*/false);
  if (!targets.ok()) return targets.status();
  return std::unique_ptr<EtcdClient>(new EtcdClient(
      io, std::move(options), std::move(targets->endpoints), std::move(targets->tls)));
}

EtcdClient::EtcdClient(asio::io_context& io, EtcdClientOptions options,
                       std::vector<EtcdEndpoint> endpoints, std::unique_ptr<EtcdTls> tls)
    : io_(io),
      options_(std::move(options)),
      endpoints_(std::move(endpoints)),
      tls_(std::move(tls)) {}

EtcdClient::~EtcdClient() {
  *alive_ = false;
  Shutdown();
}

const std::string& EtcdClient::current_endpoint() const { return options_.endpoints[current_]; }

void EtcdClient::Failed(size_t endpoint) {
  if (endpoint != current_) return;
  current_ = (current_ + 1) % endpoints_.size();
  // Connections to the failed endpoint are not reused.
  std::erase_if(idle_, [endpoint](const auto& c) { return c->endpoint == endpoint; });
}

void EtcdClient::LeaderLost(size_t endpoint, std::string path, std::string body, JsonDone done,
                            bool retry, Status error) {
  // Nothing was applied (the member refused before processing): later calls, and a read-only
  // call now, go to the next member.
  Failed(endpoint);
  if (retry && !stopped_) return Call(std::move(path), json::parse(body), std::move(done), false);
  done(std::move(error));
}

void EtcdClient::Connect(size_t endpoint,
                         std::function<void(StatusOr<std::shared_ptr<Conn>>)> done) {
  auto conn = std::make_shared<Conn>(io_, endpoint, tls_.get());
  Track(conn);
  ConnectEtcd(io_, conn, endpoints_[endpoint], options_.endpoints[endpoint], options_.timeout,
              [this, done = std::move(done), alive = std::weak_ptr<bool>(alive_)](
                  StatusOr<std::shared_ptr<Conn>> c) mutable {
                if (alive.expired()) return;
                if (stopped_) return done(Unavailable("etcd client stopped"));
                done(std::move(c));
              });
}

void EtcdClient::Call(std::string path, json body, JsonDone done, bool idempotent) {
  if (stopped_) return done(Unavailable("etcd client stopped"));
  std::string text = body.dump();
  while (!idle_.empty()) {
    std::shared_ptr<Conn> c = std::move(idle_.front());
    idle_.pop_front();
    if (c->endpoint == current_ && c->tcp().socket().is_open()) {
      // A kept-alive connection may have been closed by the server meanwhile: allow one retry.
      return Send(std::move(c), std::move(path), std::move(text), std::move(done), true,
                  idempotent);
    }
  }
  ConnectAny(endpoints_.size(),
             [this, path = std::move(path), text = std::move(text), done = std::move(done),
              idempotent](StatusOr<std::shared_ptr<Conn>> c) mutable {
               if (!c.ok()) return done(c.status());
               Send(std::move(*c), std::move(path), std::move(text), std::move(done), idempotent,
                    idempotent);
             });
}

void EtcdClient::ConnectAny(size_t tries,
                            std::function<void(StatusOr<std::shared_ptr<Conn>>)> done) {
  Connect(current_, [this, tries, ep = current_, done = std::move(done),
                     alive = std::weak_ptr<bool>(alive_)](
                        StatusOr<std::shared_ptr<Conn>> c) mutable {
    if (alive.expired()) return;  // the client is gone (its sockets were closed)
    if (c.ok() || stopped_) return done(std::move(c));
    Failed(ep);
    // Nothing was sent (no connection, or no TLS session), so any call may go to the next
    // endpoint: a member that is down must not make etcd look down while others serve.
    if (tries > 1) return ConnectAny(tries - 1, std::move(done));
    done(c.status());
  });
}

void EtcdClient::Send(std::shared_ptr<Conn> conn, std::string path, std::string body,
                      JsonDone done, bool retry_left, bool idempotent) {
  const EtcdEndpoint& ep = endpoints_[conn->endpoint];
  auto req = std::make_shared<http::request<http::string_body>>(http::verb::post, path, 11);
  req->set(http::field::host, ep.host + ":" + ep.port);
  req->set(http::field::content_type, "application/json");
  RequireLeader(*req);
  req->keep_alive(true);
  req->body() = body;
  req->prepare_payload();
  auto res = std::make_shared<http::response_parser<http::string_body>>();
  res->body_limit(64u << 20);
  conn->tcp().expires_after(options_.timeout);
  Track(conn);
  std::string name = options_.endpoints[conn->endpoint];
  auto fail = [this, conn, path, body, done, retry_left, idempotent, name,
               alive = std::weak_ptr<bool>(alive_)](const char* what,
                                                    const beast::error_code& ec) mutable {
    if (alive.expired()) return;
    beast::error_code ignored;
    conn->tcp().socket().close(ignored);
    if (stopped_) return done(Unavailable("etcd client stopped"));
    bool stale = ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
                 ec == asio::error::broken_pipe || ec == asio::error::eof ||
                 ec == asio::ssl::error::stream_truncated;
    if (retry_left && (idempotent || stale)) {
      // Stale keep-alive connection (closed by the server before our request reached it), or a
      // read-only call: retry once on a fresh connection.
      if (!stale) Failed(conn->endpoint);
      return Call(std::move(path), json::parse(body), std::move(done), false);
    }
    Failed(conn->endpoint);
    done(EtcdTransportError(name, what, ec));
  };
  auto on_read = [this, conn, res, done = std::move(done), fail, name, path, body, retry_left,
                  idempotent, sent = std::chrono::steady_clock::now(),
                  alive = std::weak_ptr<bool>(alive_)](const beast::error_code& ec,
                                                       size_t) mutable {
    if (alive.expired()) return;
    if (ec) return fail("read", ec);
    if (EtcdAnsweredLate(std::chrono::steady_clock::now() - sent, options_.timeout,
                         endpoints_.size())) {
      Failed(conn->endpoint);  // later calls go to the next member; this one was answered
    }
    auto& msg = res->get();
    if (msg.keep_alive() && !stopped_ && idle_.size() < options_.max_idle_connections) {
      conn->tcp().expires_never();
      idle_.push_back(conn);
    } else {
      beast::error_code ignored;
      conn->tcp().socket().close(ignored);
    }
    if (msg.result_int() != 200) {
      Status error = GatewayError(name, msg.result_int(), msg.body());
      if (EtcdNoLeader(error.message())) {
        return LeaderLost(conn->endpoint, std::move(path), std::move(body), std::move(done),
                          retry_left && idempotent, error);
      }
      if (EtcdLeaderChanged(error.message()) && retry_left && idempotent) {
        // A read (nothing to apply) cut short by an election: read again, once, on the next
        // member (this one works, but may be the old leader cut off from the others).
        return LeaderLost(conn->endpoint, std::move(path), std::move(body), std::move(done),
                          true, error);
      }
      return done(error);
    }
    json j = json::parse(msg.body(), nullptr, false);
    // Callers read fields with the accessors of etcd_record.h, which need no more than this.
    if (!j.is_object()) return done(Unavailable("etcd " + name + ": answer is not a JSON object"));
    try {
      done(std::move(j));
    } catch (const nlohmann::json::exception& e) {
      // The module edge: a JSON shape a reader did not expect must not end the process.
      spdlog::error("etcd answer not understood: {}", e.what());
    }
  };
  conn->With([&](auto& stream) {
    http::async_write(
        stream, *req,
        [conn, req, res, fail, on_read = std::move(on_read), alive = std::weak_ptr<bool>(alive_)](
            const beast::error_code& ec, size_t) mutable {
          if (alive.expired()) return;
          if (ec) return fail("write", ec);
          conn->With([&](auto& s) { http::async_read(s, conn->buffer, *res, std::move(on_read)); });
        });
  });
}

void EtcdClient::Watch(json create_request, EventFn on_result, ClosedFn on_closed) {
  CancelWatch();
  auto w = std::make_shared<WatchStream>();
  w->on_result = std::move(on_result);
  w->on_closed = std::move(on_closed);
  watch_ = w;
  if (stopped_) return w->Close(Unavailable("etcd client stopped"));
  ConnectAny(endpoints_.size(), [this, w, create_request = std::move(create_request),
                                 alive = std::weak_ptr<bool>(alive_)](
                                    StatusOr<std::shared_ptr<Conn>> c) {
    if (alive.expired() || w->closed) return;
    if (!c.ok()) return w->Close(c.status());
    w->conn = *c;
    const size_t ep = w->conn->endpoint;
    const EtcdEndpoint& e = endpoints_[ep];
    w->request = {http::verb::post, "/v3/watch", 11};
    w->request.set(http::field::host, e.host + ":" + e.port);
    w->request.set(http::field::content_type, "application/json");
    RequireLeader(w->request);
    w->request.body() = json{{"create_request", create_request}}.dump();
    w->request.prepare_payload();
    w->parser.body_limit(boost::none);
    w->on_chunk = [w = w.get(), this, ep, alive = std::weak_ptr<bool>(alive_)](
                      uint64_t, std::string_view data, beast::error_code&) {
      w->pending.append(data);
      size_t nl;
      while (!w->closed && (nl = w->pending.find('\n')) != std::string::npos) {
        std::string line = w->pending.substr(0, nl);
        w->pending.erase(0, nl + 1);
        json j = json::parse(line, nullptr, false);
        if (!j.is_object()) continue;
        if (j.contains("error")) {
          std::string why = JsonString(JsonField(j, "error"), "message");
          if (EtcdNoLeader(why) && !alive.expired()) Failed(ep);  // watch again elsewhere
          w->Close(Unavailable("etcd watch: " + (why.empty() ? "?" : Printable(why))));
          break;
        }
        if (JsonField(j, "result").is_object() && w->on_result) {
          try {
            w->on_result(j["result"]);
          } catch (const nlohmann::json::exception& e) {
            // The module edge: a JSON shape a reader did not expect must not end the process.
            spdlog::error("etcd watch event not understood ({}); reading the store again",
                          e.what());
            w->Close(Internal(std::string("etcd watch event not understood: ") + e.what()));
            break;
          }
        }
      }
      return data.size();
    };
    w->parser.on_chunk_body(w->on_chunk);
    w->conn->tcp().expires_after(options_.timeout);
    std::string name = options_.endpoints[ep];
    w->conn->With([&](auto& stream) {
      http::async_write(stream, w->request, [w, name](const beast::error_code& ec, size_t) {
        if (w->closed) return;
        if (ec) return w->Close(EtcdTransportError(name, "watch write", ec));
        // The header must come within the timeout; after that the stream may idle for ever
        // (liveness is checked separately by the caller's probes).
        w->read_loop = [w, name] {
          w->conn->With([&](auto& s) {
            http::async_read_some(
                s, w->conn->buffer, w->parser, [w, name](const beast::error_code& ec, size_t) {
                  if (w->closed) return;
                  if (ec) return w->Close(EtcdTransportError(name, "watch read", ec));
                  if (w->parser.is_header_done()) {
                    if (w->parser.get().result_int() != 200 && w->parser.is_done()) {
                      return w->Close(
                          GatewayError(name, w->parser.get().result_int(), w->parser.get().body()));
                    }
                    w->conn->tcp().expires_never();
                  }
                  if (w->parser.is_done()) return w->Close(Unavailable("etcd watch stream ended"));
                  if (w->read_loop) w->read_loop();
                });
          });
        };
        w->read_loop();
      });
    });
  });
}

void EtcdClient::CancelWatch() {
  if (!watch_) return;
  auto w = std::move(watch_);
  w->on_closed = nullptr;
  w->Close(Status::Ok());
}

void EtcdClient::Track(const std::shared_ptr<Conn>& conn) {
  // A kept-alive connection serves call after call: adding it for each one grew this list by
  // one entry per call, for as long as the connection lived (tokenmgr's memory rose ~0.4 MiB a
  // minute under load).
  std::erase_if(busy_, [&](const std::weak_ptr<Conn>& w) {
    std::shared_ptr<Conn> c = w.lock();
    return !c || c == conn;
  });
  busy_.push_back(conn);
}

void EtcdClient::Shutdown() {
  if (stopped_) return;
  stopped_ = true;
  if (watch_) {
    auto w = std::move(watch_);
    w->Close(Unavailable("etcd client stopped"));
  }
  idle_.clear();
  for (auto& weak : busy_) {
    if (auto c = weak.lock()) {
      beast::error_code ignored;
      c->tcp().socket().close(ignored);
    }
  }
  busy_.clear();
}

}  // namespace lm::store
