#include "store/etcd_transport.h"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "store/etcd_maintenance.h"
#include "store/etcd_record.h"

namespace lm::store {

namespace beast = boost::beast;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

bool IsIpAddress(const std::string& host) {
  beast::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

void Handshake(std::shared_ptr<EtcdConn> conn, const std::string& name, const std::string& host,
               std::function<void(StatusOr<std::shared_ptr<EtcdConn>>)> done) {
  // The server's certificate must name the host we dialled: an IP SAN for an IP address, a DNS
  // name otherwise (also sent as SNI).
  SSL* ssl = conn->secure->native_handle();
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  bool ip = IsIpAddress(host);
  int set = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
               : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  if (set != 1 || (!ip && SSL_set_tlsext_host_name(ssl, host.c_str()) != 1)) {
    return done(Unavailable("etcd " + name + ": cannot set up TLS host verification"));
  }
  conn->secure->async_handshake(
      asio::ssl::stream_base::client,
      [conn, name, done = std::move(done)](const beast::error_code& ec) {
        if (!ec) return done(conn);
        long verify = SSL_get_verify_result(conn->secure->native_handle());
        if (verify != X509_V_OK) {
          return done(Unavailable("etcd " + name + ": TLS handshake: server certificate " +
                                  "rejected: " + X509_verify_cert_error_string(verify) +
                                  " (check the etcd CA file and the certificate's names)"));
        }
        done(EtcdTransportError(name, "TLS handshake", ec));
      });
}

}  // namespace

StatusOr<EtcdEndpoint> ParseEtcdEndpoint(const std::string& url) {
  std::string rest = url;
  bool tls = false;
  if (rest.rfind("https://", 0) == 0) {
    rest = rest.substr(8);
    tls = true;
  } else if (rest.rfind("http://", 0) == 0) {
    rest = rest.substr(7);
  } else if (rest.find("://") != std::string::npos) {
    return InvalidArgument("etcd endpoint '" + url + "' must be http:// or https://");
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  size_t colon = rest.rfind(':');
  if (rest.empty() || colon == std::string::npos || colon == 0 || colon + 1 == rest.size() ||
      rest.find('/') != std::string::npos) {
    return InvalidArgument("etcd endpoint '" + url + "' must look like http(s)://host:port");
  }
  EtcdEndpoint e{rest.substr(0, colon), rest.substr(colon + 1), tls};
  if (e.host.size() > 2 && e.host.front() == '[' && e.host.back() == ']') {
    e.host = e.host.substr(1, e.host.size() - 2);
  }
  if (e.port.find_first_not_of("0123456789") != std::string::npos || e.port.size() > 5) {
    return InvalidArgument("etcd endpoint '" + url + "': bad port");
  }
  return e;
}

StatusOr<std::unique_ptr<EtcdTls>> LoadEtcdTls(const EtcdTlsFiles& files, bool http2) {
  auto tls = std::make_unique<EtcdTls>();
  asio::ssl::context& ctx = tls->ctx;
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                  asio::ssl::context::no_tlsv1_1);
  ctx.set_verify_mode(asio::ssl::verify_peer);
  if (http2) {
    static const unsigned char kH2[] = {2, 'h', '2'};
    if (SSL_CTX_set_alpn_protos(ctx.native_handle(), kH2, sizeof kH2) != 0) {
      return Internal("etcd TLS: cannot offer ALPN h2");
    }
  }
  beast::error_code ec;
  if (files.ca_file.empty()) {
    ctx.set_default_verify_paths(ec);
    if (ec) return InvalidArgument("etcd TLS: cannot load the system CAs: " + ec.message());
  } else {
    ctx.load_verify_file(files.ca_file, ec);
    if (ec) {
      return InvalidArgument("etcd CA file '" + files.ca_file +
                             "' is not a readable PEM certificate: " + ec.message());
    }
  }
  if (files.cert_file.empty() != files.key_file.empty()) {
    return InvalidArgument(
        "etcd TLS: a client certificate needs its key and a key its certificate");
  }
  if (files.cert_file.empty()) return tls;
  ctx.use_certificate_chain_file(files.cert_file, ec);
  if (ec) {
    return InvalidArgument("etcd client certificate '" + files.cert_file +
                           "' is not a readable PEM certificate: " + ec.message());
  }
  ctx.use_private_key_file(files.key_file, asio::ssl::context::pem, ec);
  if (ec || SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
    return InvalidArgument("etcd client key '" + files.key_file +
                           "' is not a readable PEM key matching '" + files.cert_file + "'" +
                           (ec ? ": " + ec.message() : std::string()));
  }
  return tls;
}

StatusOr<EtcdTargets> ParseEtcdTargets(const std::vector<std::string>& urls,
                                       const EtcdTlsFiles& files, bool http2) {
  if (urls.empty()) return InvalidArgument("no etcd endpoints given");
  EtcdTargets out;
  for (const std::string& url : urls) {
    auto e = ParseEtcdEndpoint(url);
    if (!e.ok()) return e.status();
    if (!out.endpoints.empty() && e->tls != out.endpoints.front().tls) {
      return InvalidArgument("etcd endpoints mix http:// and https://; use one scheme for all");
    }
    out.endpoints.push_back(*e);
  }
  bool any_file = !files.ca_file.empty() || !files.cert_file.empty() || !files.key_file.empty();
  if (out.endpoints.front().tls) {
    auto loaded = LoadEtcdTls(files, http2);
    if (!loaded.ok()) return loaded.status();
    out.tls = std::move(*loaded);
  } else if (any_file) {
    return InvalidArgument(
        "etcd CA/certificate/key files are given but the endpoints are "
        "http://; use https:// endpoints for TLS");
  }
  return out;
}

void ConnectEtcd(asio::io_context& io, std::shared_ptr<EtcdConn> conn, const EtcdEndpoint& ep,
                 std::string name, std::chrono::milliseconds timeout,
                 std::function<void(StatusOr<std::shared_ptr<EtcdConn>>)> done) {
  auto resolver = std::make_shared<tcp::resolver>(io);
  conn->tcp().expires_after(timeout);
  resolver->async_resolve(
      ep.host, ep.port,
      [resolver, conn, name, host = ep.host, done = std::move(done)](
          const beast::error_code& ec, tcp::resolver::results_type results) mutable {
        if (ec) return done(EtcdTransportError(name, "resolve", ec));
        conn->tcp().async_connect(results, [conn, name, host, done = std::move(done)](
                                               const beast::error_code& ec,
                                               const tcp::endpoint&) mutable {
          if (ec) return done(EtcdTransportError(name, "connect", ec));
          conn->tcp().socket().set_option(tcp::no_delay(true));
          if (!conn->secure) return done(conn);
          Handshake(conn, name, host, std::move(done));
        });
      });
}

Status EtcdTransportError(const std::string& endpoint, const std::string& what,
                          const beast::error_code& ec) {
  std::string text = "etcd " + endpoint + ": " + what + ": " + ec.message();
  if (ec.category() == asio::error::get_ssl_category()) {
    // Usually the other side refused our client certificate (an alert from etcd).
    text += " (TLS: check the etcd CA, client certificate and key)";
  }
  return Unavailable(text);
}

Status EtcdErrorStatus(const std::string& endpoint, const std::string& answer, int code,
                       std::string_view message) {
  std::string text = "etcd " + endpoint + " " + answer + ": " + Printable(message);
  if (code == 3) return Internal(text);  // InvalidArgument: our request was malformed
  if (code == 5) return NotFound(text);  // e.g. a put on a lease that is gone: refused
  if (code == 8 && message.find("space exceeded") != std::string_view::npos) {
    // The quota alarm: every write is refused until an operator makes room (issue 20).
    return Unavailable("etcd " + endpoint + ": " + EtcdMaintenance::kNoSpaceMessage);
  }
  return Unavailable(text);
}

bool EtcdNoLeader(std::string_view message) {
  return message.find("etcdserver: no leader") != std::string_view::npos;
}

bool EtcdLeaderChanged(std::string_view message) {
  return message.find("etcdserver: leader changed") != std::string_view::npos;
}

}  // namespace lm::store
