#include "app/tokenmgr_config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

namespace lm::app {
namespace {

StatusOr<TokenmgrConfig> Parse(std::vector<const char*> args, EnvMap env = {}) {
  args.insert(args.begin(), "tokenmgr");
  return ParseTokenmgrConfig(static_cast<int>(args.size()), args.data(), env);
}

TEST(TokenmgrConfig, DefaultsMatchTheSeed) {
  auto c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->port, 8080);
  EXPECT_EQ(c->lock.default_ttl.count(), 10);
  EXPECT_EQ(c->bind_address, "0.0.0.0");
  EXPECT_TRUE(c->state_file.empty());
  EXPECT_FALSE(c->auth_token.has_value());
}

TEST(TokenmgrConfig, ClaimTtlIsReadFromTheAgentsVariable) {
  EXPECT_EQ(Parse({})->claim_ttl, std::chrono::seconds(60));
  EXPECT_EQ(Parse({}, {{"CLAIM_TTL_SECONDS", ""}})->claim_ttl, std::chrono::seconds(60));
  EXPECT_EQ(Parse({}, {{"CLAIM_TTL_SECONDS", "2"}})->claim_ttl, std::chrono::seconds(2));
  EXPECT_EQ(Parse({}, {{"CLAIM_TTL_SECONDS", "0"}}).status().message(),
            "CLAIM_TTL_SECONDS must be at least 1");
  EXPECT_EQ(Parse({}, {{"CLAIM_TTL_SECONDS", "1m"}}).status().message(),
            "CLAIM_TTL_SECONDS must be a whole non-negative number, got '1m'");
  EXPECT_EQ(Parse({}, {{"CLAIM_TTL_SECONDS", "86401"}}).status().message(),
            "CLAIM_TTL_SECONDS is 86401, above its maximum of 86400");
}

TEST(TokenmgrConfig, EnvIsRead) {
  auto c = Parse({}, {{"LISTENPORT", "9090"}, {"LOCKDURATION", "30"}, {"STATE_FILE", "/x"},
                      {"MAX_WAIT", "60"}, {"MAX_TTL", "120"}, {"LOG_FORMAT", "json"}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->port, 9090);
  EXPECT_EQ(c->lock.default_ttl.count(), 30);
  EXPECT_EQ(c->state_file, "/x");
  EXPECT_EQ(c->lock.max_wait.count(), 60);
  EXPECT_EQ(c->lock.max_ttl.count(), 120);
  EXPECT_EQ(c->log_format, "json");
}

TEST(TokenmgrConfig, LogLevelComesFromEnvOrFlagAndDefaultsToInfo) {
  EXPECT_EQ(Parse({})->log_level, spdlog::level::info);
  EXPECT_EQ(Parse({}, {{"LOG_LEVEL", "debug"}})->log_level, spdlog::level::debug);
  EXPECT_EQ(Parse({"--log-level", "error"}, {{"LOG_LEVEL", "debug"}})->log_level,
            spdlog::level::err);
  auto bad = Parse({"--log-level", "loud"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--log-level"), std::string::npos);
}

TEST(TokenmgrConfig, ListenErrorsNameThePortAndAddressSettings) {
  EXPECT_EQ(Parse({})->server.listen_setting,
            "LISTENPORT/--listen-port, BIND_ADDRESS/--bind-address");
}

TEST(TokenmgrConfig, FlagsWinOverEnv) {
  auto c = Parse({"--listen-port", "7000", "-d", "5"}, {{"LISTENPORT", "9090"}, {"LOCKDURATION", "30"}});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->port, 7000);
  EXPECT_EQ(c->lock.default_ttl.count(), 5);
}

TEST(TokenmgrConfig, SeedStyleFlagsAreAccepted) {
  auto c = Parse({"-listenport", "7001", "-lockduration=4", "-tplpath", "."});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->port, 7001);
  EXPECT_EQ(c->lock.default_ttl.count(), 4);
}

TEST(TokenmgrConfig, BadEnvValuesNameTheVariable) {
  const std::pair<const char*, const char*> bad[] = {
      {"LISTENPORT", "abc"},       {"LISTENPORT", "70000"},
      {"LISTENPORT", "-1"},        {"LOCKDURATION", "0"},
      {"LOCKDURATION", "1.5"},     {"MAX_WAIT", "0x10"},
      {"MAX_TTL", "99999999999"},  {"LOG_FORMAT", "xml"},
      {"MAX_CONNECTIONS", "0"},    {"AUTH_TOKEN_FILE", "/nonexistent/token"},
      {"MAX_HEADER_BYTES", "100"}, {"MAX_HEADER_BYTES", "99999999"},
      {"MAX_HEADER_COUNT", "2"},   {"MAX_HEADER_COUNT", "x"},
      {"MAX_BODY_BYTES", "-5"},    {"MAX_BODY_BYTES", "1e9"},
      {"LOG_LEVEL", "verbose"},    {"LOG_LEVEL", "warning"},
  };
  for (auto [var, value] : bad) {
    auto c = Parse({}, {{var, value}});
    ASSERT_FALSE(c.ok()) << var << "=" << value;
    EXPECT_NE(c.status().message().find(var), std::string::npos) << c.status().message();
  }
}

TEST(TokenmgrConfig, RequestLimitsAreConfigurable) {
  auto d = Parse({});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->server.max_header_bytes, 8192u);
  EXPECT_EQ(d->server.max_header_count, 64u);
  EXPECT_EQ(d->server.max_body_bytes, 65536u);
  auto c = Parse({"--max-header-count", "10"},
                 {{"MAX_HEADER_BYTES", "4096"}, {"MAX_HEADER_COUNT", "20"}, {"MAX_BODY_BYTES", "0"}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->server.max_header_bytes, 4096u);
  EXPECT_EQ(c->server.max_header_count, 10u);  // the flag wins
  EXPECT_EQ(c->server.max_body_bytes, 0u);     // no request of ours has a body
}

TEST(TokenmgrConfig, LockDurationAboveMaxTtlIsRejected) {
  auto c = Parse({}, {{"LOCKDURATION", "100"}, {"MAX_TTL", "50"}});
  EXPECT_FALSE(c.ok());
}

TEST(TokenmgrConfig, UnknownFlagIsAnError) {
  EXPECT_FALSE(Parse({"--no-such-flag"}).ok());
  EXPECT_FALSE(Parse({"--listen-port"}).ok());
}

TEST(TokenmgrConfig, AuthTokenFileIsReadAndValidated) {
  char tmpl[] = "/tmp/authtok.XXXXXX";
  int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(tmpl) << "  s3cret-token\n";
  auto c = Parse({"--auth-token-file", tmpl});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(*c->auth_token, "s3cret-token");
  std::ofstream(tmpl) << "\n";
  EXPECT_FALSE(Parse({"--auth-token-file", tmpl}).ok());
  std::ofstream(tmpl) << "two words";
  EXPECT_FALSE(Parse({"--auth-token-file", tmpl}).ok());
  unlink(tmpl);
}

TEST(TokenmgrConfig, AuthTokenFileMountedFromASecretIsFollowed) {
  // What the kubelet writes for a Secret volume: token -> ..data/token, ..data -> ..<stamp>/.
  char tmpl[] = "/tmp/secretvol.XXXXXX";
  std::string dir = mkdtemp(tmpl);
  ASSERT_EQ(mkdir((dir + "/..2026_11_27_17_00_00.1").c_str(), 0755), 0);
  std::ofstream(dir + "/..2026_11_27_17_00_00.1/token") << "k8s-secret-token";
  ASSERT_EQ(symlink("..2026_11_27_17_00_00.1", (dir + "/..data").c_str()), 0);
  ASSERT_EQ(symlink("..data/token", (dir + "/token").c_str()), 0);
  auto c = Parse({"--auth-token-file", (dir + "/token").c_str()});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(*c->auth_token, "k8s-secret-token");
  ASSERT_EQ(symlink("nowhere", (dir + "/dangling").c_str()), 0);
  auto bad = Parse({"--auth-token-file", (dir + "/dangling").c_str()});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("dangling"), std::string::npos) << bad.status().message();
  std::filesystem::remove_all(dir);
}

TEST(TokenmgrConfig, BadBindAddressNamesItsSource) {
  auto env = Parse({}, {{"BIND_ADDRESS", "not-an-ip"}});
  ASSERT_FALSE(env.ok());
  EXPECT_NE(env.status().message().find("BIND_ADDRESS"), std::string::npos);
  auto flag = Parse({"--bind-address", "256.1.1.1"});
  ASSERT_FALSE(flag.ok());
  EXPECT_NE(flag.status().message().find("--bind-address"), std::string::npos);
  EXPECT_TRUE(Parse({"--bind-address", "::1"}).ok());
  EXPECT_TRUE(Parse({}, {{"BIND_ADDRESS", "127.0.0.1"}}).ok());
}

// ---- STORE=etcd and TLS to etcd ----------------------------------------------------------

// A temp dir with a PEM-looking file (contents are parsed only when the store opens).
struct TlsFiles {
  TlsFiles() {
    char tmpl[] = "/tmp/tokenmgr-tls-XXXXXX";
    dir = mkdtemp(tmpl);
    pem = dir + "/ca.pem";
    std::ofstream(pem) << "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    text = dir + "/not-pem.txt";
    std::ofstream(text) << "hello\n";
  }
  ~TlsFiles() { std::filesystem::remove_all(dir); }
  std::string dir, pem, text;
};

EnvMap EtcdEnv(std::string endpoints, EnvMap extra = {}) {
  extra["STORE"] = "etcd";
  extra["ETCD_ENDPOINTS"] = std::move(endpoints);
  return extra;
}

void ExpectError(const StatusOr<TokenmgrConfig>& c, const std::vector<std::string>& needles) {
  ASSERT_FALSE(c.ok());
  for (const std::string& n : needles) {
    EXPECT_NE(c.status().message().find(n), std::string::npos)
        << "'" << n << "' not in: " << c.status().message();
  }
}

TEST(TokenmgrConfig, EtcdTlsFilesAreReadFromEnv) {
  TlsFiles f;
  auto c = Parse({}, EtcdEnv("https://10.0.0.1:2379, https://etcd:2379",
                             {{"ETCD_CACERT", f.pem}, {"ETCD_CERT", f.pem}, {"ETCD_KEY", f.pem}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->etcd_endpoints,
            (std::vector<std::string>{"https://10.0.0.1:2379", "https://etcd:2379"}));
  EXPECT_EQ(c->etcd_cacert, f.pem);
  EXPECT_EQ(c->etcd_cert, f.pem);
  EXPECT_EQ(c->etcd_key, f.pem);
}

TEST(TokenmgrConfig, EtcdTlsFlagsWinOverEnv) {
  TlsFiles f;
  auto c = Parse({"--etcd-cacert", f.pem.c_str()},
                 EtcdEnv("https://e:2379", {{"ETCD_CACERT", "/nope"}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->etcd_cacert, f.pem);
  EXPECT_TRUE(c->etcd_cert.empty());
}

TEST(TokenmgrConfig, HttpsWithoutFilesUsesTheSystemCas) {
  auto c = Parse({}, EtcdEnv("https://e:2379"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->etcd_cacert.empty());
}

TEST(TokenmgrConfig, EtcdTlsFilesWithHttpEndpointsAreRefused) {
  TlsFiles f;
  ExpectError(Parse({}, EtcdEnv("http://e:2379", {{"ETCD_CACERT", f.pem}})),
              {"ETCD_CACERT", "https://"});
  ExpectError(Parse({"--etcd-cert", f.pem.c_str(), "--etcd-key", f.pem.c_str()}, EtcdEnv("e:2379")),
              {"--etcd-cert", "https://"});
}

TEST(TokenmgrConfig, MixedEtcdSchemesAreRefused) {
  ExpectError(Parse({}, EtcdEnv("https://a:2379,http://b:2379")), {"ETCD_ENDPOINTS", "mixes"});
  ExpectError(Parse({}, EtcdEnv("unix://a:2379")), {"ETCD_ENDPOINTS", "https://host:port"});
}

TEST(TokenmgrConfig, EtcdCertWithoutKeyAndKeyWithoutCertAreRefused) {
  TlsFiles f;
  ExpectError(Parse({}, EtcdEnv("https://e:2379", {{"ETCD_CERT", f.pem}})),
              {"ETCD_CERT", "ETCD_KEY"});
  ExpectError(Parse({"--etcd-key", f.pem.c_str()}, EtcdEnv("https://e:2379")),
              {"--etcd-key", "ETCD_CERT"});
}

TEST(TokenmgrConfig, MissingEtcdTlsFileNamesItsSourceAndPath) {
  TlsFiles f;
  std::string missing = f.dir + "/missing.pem";
  ExpectError(Parse({}, EtcdEnv("https://e:2379", {{"ETCD_CACERT", missing}})),
              {"ETCD_CACERT", missing, "does not exist"});
}

TEST(TokenmgrConfig, EtcdTlsFileThatIsADirectoryIsRefused) {
  TlsFiles f;
  ExpectError(
      Parse({"--etcd-cert", f.dir.c_str(), "--etcd-key", f.pem.c_str()}, EtcdEnv("https://e:2379")),
      {"--etcd-cert", "not a regular file"});
}

TEST(TokenmgrConfig, UnreadableEtcdTlsFileIsRefused) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads files whatever their mode";
  TlsFiles f;
  chmod(f.pem.c_str(), 0);
  ExpectError(Parse({}, EtcdEnv("https://e:2379", {{"ETCD_KEY", f.pem}, {"ETCD_CERT", f.text}})),
              {"cannot read"});
}

TEST(TokenmgrConfig, EtcdTlsFileThatIsNotPemIsRefused) {
  TlsFiles f;
  ExpectError(Parse({}, EtcdEnv("https://e:2379", {{"ETCD_KEY", f.text}, {"ETCD_CERT", f.pem}})),
              {"ETCD_KEY", "not a PEM file"});
}

TEST(TokenmgrConfig, EtcdTlsFilesOfASymlinkedSecretAreFollowed) {
  // Kubernetes mounts Secret keys as symlinks into a ..data directory.
  TlsFiles f;
  std::string link = f.dir + "/ca.crt";
  ASSERT_EQ(symlink(f.pem.c_str(), link.c_str()), 0);
  auto c = Parse({}, EtcdEnv("https://e:2379", {{"ETCD_CACERT", link}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->etcd_cacert, link);
}

TEST(TokenmgrConfig, EtcdCompactionIsAutoEveryTenSecondsByDefault) {
  auto c = Parse({}, EtcdEnv("http://e:2379"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->etcd_compact);
  EXPECT_EQ(c->etcd_compact_interval_s, 10);
  c = Parse({"--etcd-compact-interval", "300"},
            EtcdEnv("http://e:2379", {{"ETCD_COMPACT", "off"}, {"ETCD_COMPACT_INTERVAL", "9"}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->etcd_compact);
  EXPECT_EQ(c->etcd_compact_interval_s, 300);
}

TEST(TokenmgrConfig, EtcdCompactionSettingsAreChecked) {
  ExpectError(Parse({}, EtcdEnv("http://e:2379", {{"ETCD_COMPACT", "yes"}})),
              {"ETCD_COMPACT", "'auto' or 'off'"});
  ExpectError(Parse({"--etcd-compact-interval", "1"}, EtcdEnv("http://e:2379")),
              {"--etcd-compact-interval", "at least 5"});
  ExpectError(Parse({}, EtcdEnv("http://e:2379", {{"ETCD_COMPACT_INTERVAL", "1m"}})),
              {"ETCD_COMPACT_INTERVAL"});
}

TEST(TokenmgrConfig, EtcdProtocolIsGrpcByDefaultJsonOnRequestAndChecked) {
  auto c = Parse({}, EtcdEnv("http://e:2379"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->etcd_protocol, "grpc");
  c = Parse({}, EtcdEnv("http://e:2379", {{"ETCD_PROTOCOL", "json"}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->etcd_protocol, "json");
  c = Parse({"--etcd-protocol", "grpc"}, EtcdEnv("http://e:2379", {{"ETCD_PROTOCOL", "json"}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->etcd_protocol, "grpc");  // the flag wins
  c = Parse({}, EtcdEnv("http://e:2379", {{"ETCD_PROTOCOL", ""}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->etcd_protocol, "grpc");  // empty = unset
  for (const std::string& bad :
       std::vector<std::string>{"GRPC", "http", "grpc ", "h2", std::string(5000, 'j')}) {
    ExpectError(Parse({}, EtcdEnv("http://e:2379", {{"ETCD_PROTOCOL", bad}})),
                {"ETCD_PROTOCOL", "'grpc' or 'json'"});
  }
  ExpectError(Parse({"--etcd-protocol", "rest"}, EtcdEnv("http://e:2379")),
              {"--etcd-protocol", "'grpc' or 'json'"});
}

TEST(TokenmgrConfig, EtcdQueueStallIs300MsByDefaultAndChecked) {
  auto c = Parse({}, EtcdEnv("http://e:2379"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->etcd_queue_stall_ms, 300);
  c = Parse({}, EtcdEnv("http://e:2379", {{"ETCD_QUEUE_STALL_MS", "1000"}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->etcd_queue_stall_ms, 1000);
  c = Parse({"--etcd-queue-stall-ms", "50"},
            EtcdEnv("http://e:2379", {{"ETCD_QUEUE_STALL_MS", "1000"}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->etcd_queue_stall_ms, 50);  // the flag wins
  c = Parse({}, EtcdEnv("http://e:2379", {{"ETCD_QUEUE_STALL_MS", ""}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->etcd_queue_stall_ms, 300);  // empty = unset, as for every variable
  ExpectError(Parse({"--etcd-queue-stall-ms", "49"}, EtcdEnv("http://e:2379")),
              {"--etcd-queue-stall-ms", "at least 50"});
  for (const char* bad : {"-1", "0.5", "300ms", "99999999999999999999", "600001", "3 00"}) {
    ExpectError(Parse({}, EtcdEnv("http://e:2379", {{"ETCD_QUEUE_STALL_MS", bad}})),
                {"ETCD_QUEUE_STALL_MS"});
  }
}

}  // namespace
}  // namespace lm::app

namespace lm::app {
namespace {

TEST(TokenmgrConfig, ConsoleBoundsDefault) {
  auto c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->events_max, 100000u);
  EXPECT_EQ(c->events_max_age, std::chrono::hours(24 * 30));
  EXPECT_EQ(c->node_retention, std::chrono::hours(24));
}

TEST(TokenmgrConfig, ConsoleBoundsFromEnvAndFlags) {
  auto c = Parse({"--events-max", "5", "--node-retention", "2h"},
                 {{"EVENTS_MAX", "7"}, {"EVENTS_MAX_AGE", "12h"}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->events_max, 5u);
  EXPECT_EQ(c->events_max_age, std::chrono::hours(12));
  EXPECT_EQ(c->node_retention, std::chrono::hours(2));
  EXPECT_EQ(Parse({}, {{"EVENTS_MAX_AGE", "90"}})->events_max_age, std::chrono::seconds(90));
  EXPECT_EQ(Parse({}, {{"EVENTS_MAX_AGE", "3m"}})->events_max_age, std::chrono::minutes(3));
  EXPECT_EQ(Parse({}, {{"EVENTS_MAX_AGE", "7d"}})->events_max_age, std::chrono::hours(24 * 7));
  EXPECT_EQ(Parse({}, {{"EVENTS_MAX", "10000000"}})->events_max, 10000000u);
}

TEST(TokenmgrConfig, BadConsoleBoundsNameTheVariable) {
  EXPECT_EQ(Parse({}, {{"EVENTS_MAX", "0"}}).status().message(), "EVENTS_MAX must be at least 1");
  EXPECT_EQ(Parse({}, {{"EVENTS_MAX", "10000001"}}).status().message(),
            "EVENTS_MAX is 10000001, above its maximum of 10000000");
  EXPECT_EQ(Parse({"--events-max", "-3"}).status().message(),
            "--events-max must be a whole non-negative number, got '-3'");
  for (const char* bad : {"30x", "d", "-1d", "1.5h", "99999999999999999999d", "3651d", ""}) {
    auto c = Parse({"--events-max-age", bad});
    if (std::string(bad).empty()) continue;  // an empty flag value counts as unset
    EXPECT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("--events-max-age"), std::string::npos) << bad;
  }
  EXPECT_EQ(Parse({}, {{"EVENTS_MAX_AGE", "0s"}}).status().message(),
            "EVENTS_MAX_AGE must be at least 1s");
  EXPECT_NE(Parse({}, {{"NODE_RETENTION", "soon"}}).status().message().find("NODE_RETENTION"),
            std::string::npos);
  EXPECT_EQ(Parse({}, {{"NODE_RETENTION", "30s"}}).status().message(),
            "NODE_RETENTION (30s) must be at least CLAIM_TTL_SECONDS (60s): a silent node is "
            "shown as gone before it is dropped");
  EXPECT_TRUE(Parse({}, {{"NODE_RETENTION", "30s"}, {"CLAIM_TTL_SECONDS", "10"}}).ok());
}

}  // namespace
}  // namespace lm::app
