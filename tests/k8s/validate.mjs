// Offline validation of Kubernetes objects against the Kubernetes OpenAPI schemas, as compiled
// into the npm package kubernetes-models (and the Prometheus operator's CRD schemas, from
// @kubernetes-models/prometheus-operator), plus a check for unknown fields, which those schemas
// do not reject by themselves (the API server's strict field validation does).
//
//   import { validateObject } from "./validate.mjs";
//   const errors = await validateObject(obj);   // [] when valid, else "path: message" strings
//
// Unknown fields are found by watching the compiled validator: it reads every property its schema
// defines, so a property of the object that the validator never read is not in the schema. Maps
// (labels, annotations, ConfigMap data, resources.limits...) are enumerated by the validator,
// which marks all of their keys as known.
//
// CLI: node validate.mjs [file.yaml ...]   (no files: read the YAML stream from stdin)
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

// apiVersion "apps/v1" -> module "kubernetes-models/apps/v1"; core "v1" -> "kubernetes-models/v1".
async function modelFor(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string") return null;
  // Custom resources of the Prometheus operator (the monitoring component) have their CRD
  // schemas compiled into @kubernetes-models/prometheus-operator.
  const from = apiVersion.startsWith("monitoring.coreos.com/")
    ? `@kubernetes-models/prometheus-operator/${apiVersion}`
    : `kubernetes-models/${apiVersion}`;
  let mod;
  try {
    mod = await import(from);
  } catch {
    return null;
  }
  const model = mod[kind];
  return typeof model === "function" && typeof model.prototype.validate === "function"
    ? model
    : null;
}

// Wraps `value` so that every property read and every key enumeration is recorded per path.
function track(value, path, seen) {
  if (value === null || typeof value !== "object") return value;
  const entry = { read: new Set(), enumerated: false, value };
  seen.set(path, entry);
  const cache = new Map();
  return new Proxy(value, {
    get(target, prop, receiver) {
      if (typeof prop === "string") entry.read.add(prop);
      const v = Reflect.get(target, prop, receiver);
      if (typeof prop !== "string" || v === null || typeof v !== "object") return v;
      if (!cache.has(prop)) cache.set(prop, track(v, `${path}/${prop}`, seen));
      return cache.get(prop);
    },
    has(target, prop) {
      if (typeof prop === "string") entry.read.add(prop);
      return Reflect.has(target, prop);
    },
    ownKeys(target) {
      entry.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

function unknownFields(seen) {
  const errors = [];
  for (const [path, { read, enumerated, value }] of seen) {
    if (Array.isArray(value) || enumerated) continue;
    for (const key of Object.keys(value)) {
      if (!read.has(key)) errors.push(`${path || "/"}: unknown field "${key}"`);
    }
  }
  return errors;
}

// Returns a list of error strings for one object (empty when it is valid).
export async function validateObject(obj) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    return ["document is not an object"];
  }
  const name = `${obj.kind}/${obj.metadata?.name ?? "?"}`;
  const model = await modelFor(obj.apiVersion, obj.kind);
  if (!model) return [`${name}: unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`];
  const seen = new Map();
  const errors = [];
  try {
    model.prototype.validate.call(track(structuredClone(obj), "", seen));
  } catch (e) {
    const list = Array.isArray(e.errors) ? e.errors : [];
    if (list.length === 0) errors.push(`${name}: ${e.message}`);
    for (const err of list) {
      errors.push(`${name}: ${err.instancePath || "/"} ${err.message}` +
                  (err.params?.allowedValues ? ` (${err.params.allowedValues.join(", ")})` : ""));
    }
  }
  // Unknown-field results are only meaningful where the structure was valid enough to be walked.
  for (const u of unknownFields(seen)) errors.push(`${name}: ${u}`);
  return errors;
}

// Parses a multi-document YAML stream; returns {objects, errors}.
export function parseYamlStream(text) {
  const objects = [];
  const errors = [];
  for (const doc of parseAllDocuments(text, { uniqueKeys: true })) {
    for (const e of doc.errors) errors.push(`YAML: ${e.message}`);
    const obj = doc.toJS();
    if (obj !== null && obj !== undefined) objects.push(obj);
  }
  return { objects, errors };
}

export async function validateYaml(text) {
  const { objects, errors } = parseYamlStream(text);
  for (const obj of objects) errors.push(...(await validateObject(obj)));
  return { objects, errors };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const inputs = process.argv.length > 2
    ? process.argv.slice(2).map((f) => [f, readFileSync(f, "utf8")])
    : [["<stdin>", readFileSync(0, "utf8")]];
  let failed = 0;
  let count = 0;
  for (const [file, text] of inputs) {
    const { objects, errors } = await validateYaml(text);
    count += objects.length;
    for (const e of errors) console.error(`${file}: ${e}`);
    failed += errors.length;
  }
  console.log(`${count} objects checked, ${failed} errors`);
  process.exit(failed ? 1 : 0);
}
