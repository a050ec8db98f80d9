#include "store/etcd_gateway_api.h"

namespace lm::store {

using json = nlohmann::json;

namespace {

const char* TargetName(CompareTarget t) {
  switch (t) {
    case CompareTarget::kCreate: return "CREATE";
    case CompareTarget::kMod: return "MOD";
    case CompareTarget::kValue: return "VALUE";
  }
  return "CREATE";
}

const char* ResultName(CompareResult r) {
  switch (r) {
    case CompareResult::kEqual: return "EQUAL";
    case CompareResult::kGreater: return "GREATER";
    case CompareResult::kLess: return "LESS";
    case CompareResult::kNotEqual: return "NOT_EQUAL";
  }
  return "EQUAL";
}

json CompareJson(const Compare& c) {
  json j = {{"key", Base64Encode(c.key)},
            {"target", TargetName(c.target)},
            {"result", ResultName(c.result)}};
  switch (c.target) {
    case CompareTarget::kCreate: j["create_revision"] = std::to_string(c.revision); break;
    case CompareTarget::kMod: j["mod_revision"] = std::to_string(c.revision); break;
    case CompareTarget::kValue: j["value"] = Base64Encode(c.value); break;
  }
  if (!c.range_end.empty()) j["range_end"] = Base64Encode(c.range_end);
  return j;
}

json OpJson(const Op& op) {
  switch (op.kind) {
    case Op::Kind::kPut: {
      json p = {{"key", Base64Encode(op.key)}, {"value", Base64Encode(op.value)}};
      if (op.lease) p["lease"] = std::to_string(op.lease);
      return {{"request_put", p}};
    }
    case Op::Kind::kDelete: {
      json d = {{"key", Base64Encode(op.key)}};
      if (!op.range_end.empty()) d["range_end"] = Base64Encode(op.range_end);
      return {{"request_delete_range", d}};
    }
    case Op::Kind::kRange:
      return {{"request_range",
               {{"key", Base64Encode(op.key)}, {"range_end", Base64Encode(op.range_end)}}}};
    case Op::Kind::kTxn:
      return {{"request_txn", TxnJson(*op.txn)}};
  }
  return json::object();
}

KeyValue ReadKv(const json& kv) {
  KeyValue out;
  StatusOr<EtcdKv> parsed = ParseKv(kv);
  if (!parsed.ok()) {
    out.mod_revision = JsonInt(kv, "mod_revision");
    out.undecodable = parsed.status().message();
    return out;
  }
  static_cast<EtcdKv&>(out) = std::move(*parsed);
  return out;
}

std::vector<KeyValue> ReadKvs(const json& j) {
  std::vector<KeyValue> kvs;
  for (const json& kv : JsonArray(j, "kvs")) kvs.push_back(ReadKv(kv));
  return kvs;
}

int64_t HeaderRevision(const json& j) { return JsonInt(JsonObject(j, "header"), "revision"); }

std::vector<OpResponse> ReadResponses(const json& j) {
  std::vector<OpResponse> out;
  for (const json& resp : JsonArray(j, "responses")) {
    OpResponse r;
    r.kvs = ReadKvs(JsonObject(resp, "response_range"));
    const json& nested = JsonObject(resp, "response_txn");
    r.succeeded = JsonBool(nested, "succeeded");
    r.responses = ReadResponses(nested);
    out.push_back(std::move(r));
  }
  return out;
}

// Runs `done` with the status of a call whose answer carries nothing we read.
auto StatusOnly(EtcdApi::StatusDone done) {
  return [done = std::move(done)](StatusOr<json> r) {
    if (done) done(r.status());
  };
}

}  // namespace

std::set<std::string> AlarmsFromStatus(const json& status) {
  std::set<std::string> alarms;
  const json& errors = status.value("errors", json::array());
  if (!errors.is_array()) return alarms;
  for (const json& e : errors) {
    if (!e.is_string()) continue;
    if (auto alarm = AlarmName(e.get_ref<const std::string&>())) alarms.insert(*alarm);
  }
  return alarms;
}

json TxnJson(const Txn& txn) {
  json j = {{"compare", json::array()}, {"success", json::array()}, {"failure", json::array()}};
  for (const Compare& c : txn.compare) j["compare"].push_back(CompareJson(c));
  for (const Op& op : txn.success) j["success"].push_back(OpJson(op));
  for (const Op& op : txn.failure) j["failure"].push_back(OpJson(op));
  return j;
}

TxnResponse ParseTxnResponse(const json& r) {
  return {HeaderRevision(r), JsonBool(r, "succeeded"), ReadResponses(r)};
}

void EtcdGatewayApi::Range(RangeRequest request, Done<RangeResponse> done) {
  json body = {{"key", Base64Encode(request.key)}};
  if (!request.range_end.empty()) body["range_end"] = Base64Encode(request.range_end);
  if (request.count_only) body["count_only"] = true;
  client_->Call(
      "/v3/kv/range", std::move(body),
      [done = std::move(done)](StatusOr<json> r) {
        if (!r.ok()) return done(r.status());
        done(RangeResponse{HeaderRevision(*r), ReadKvs(*r), JsonInt(*r, "count")});
      },
      /*idempotent=*/true);
}

void EtcdGatewayApi::DoTxn(Txn txn, Done<TxnResponse> done) {
  client_->Call("/v3/kv/txn", TxnJson(txn), [done = std::move(done)](StatusOr<json> r) {
    if (!r.ok()) return done(r.status());
    done(ParseTxnResponse(*r));
  });
}

void EtcdGatewayApi::DeleteKey(std::string key, StatusDone done) {
  client_->Call("/v3/kv/deleterange", {{"key", Base64Encode(key)}}, StatusOnly(std::move(done)));
}

void EtcdGatewayApi::LeaseGrant(int64_t ttl_s, Done<LeaseGrantResponse> done) {
  client_->Call("/v3/lease/grant", {{"TTL", std::to_string(ttl_s)}},
                [done = std::move(done)](StatusOr<json> r) {
                  if (!r.ok()) return done(r.status());
                  done(LeaseGrantResponse{JsonInt(*r, "ID"), JsonInt(*r, "TTL")});
                });
}

void EtcdGatewayApi::LeaseKeepAlive(int64_t id, Done<int64_t> done) {
  client_->Call(
      "/v3/lease/keepalive", {{"ID", std::to_string(id)}},
      [done = std::move(done)](StatusOr<json> r) {
        if (!r.ok()) return done(r.status());
        done(JsonInt(JsonObject(*r, "result"), "TTL"));
      },
      /*idempotent=*/true);
}

void EtcdGatewayApi::LeaseRevoke(int64_t id, StatusDone done, bool retry) {
  client_->Call("/v3/lease/revoke", {{"ID", std::to_string(id)}}, StatusOnly(std::move(done)),
                retry);
}

void EtcdGatewayApi::Watch(WatchRequest request,
                           std::function<void(const WatchResponse&)> on_response,
                           StatusDone on_closed) {
  json create = {{"key", Base64Encode(request.key)},
                 {"range_end", Base64Encode(request.range_end)},
                 {"start_revision", std::to_string(request.start_revision)}};
  client_->Watch(
      std::move(create),
      [on_response = std::move(on_response)](const json& result) {
        WatchResponse w;
        w.created = JsonBool(result, "created");
        w.canceled = JsonBool(result, "canceled");
        w.cancel_reason = JsonString(result, "cancel_reason");
        w.revision = HeaderRevision(result);
        for (const json& ev : JsonArray(result, "events")) {
          w.events.push_back({JsonString(ev, "type") == "DELETE", ReadKv(JsonObject(ev, "kv"))});
        }
        on_response(w);
      },
      std::move(on_closed));
}

void EtcdGatewayApi::Compact(int64_t revision, StatusDone done) {
  client_->Call("/v3/kv/compaction", {{"revision", std::to_string(revision)}},
                StatusOnly(std::move(done)), /*idempotent=*/true);
}

void EtcdGatewayApi::MemberStatus(Done<EtcdStatusResponse> done) {
  client_->Call(
      "/v3/maintenance/status", json::object(),
      [done = std::move(done)](StatusOr<json> r) {
        if (!r.ok()) return done(r.status());
        done(EtcdStatusResponse{JsonInt(r->value("header", json::object()), "revision"),
                                JsonInt(*r, "dbSize"), JsonInt(*r, "dbSizeInUse"),
                                AlarmsFromStatus(*r)});
      },
      /*idempotent=*/true);
}

}  // namespace lm::store
