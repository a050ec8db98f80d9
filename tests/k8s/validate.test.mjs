// Validates examples/kubernetes without a cluster: kustomize renders it (alone and with the auth
// component), every object passes the Kubernetes OpenAPI schemas with no unknown fields, and the
// workloads follow the deployment rules of issue 5. Run: cd tests/k8s && npm ci && npm test
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import Ajv from "ajv";
import { parseYamlStream, validateObject, validateYaml } from "./validate.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const examples = resolve(here, "../../examples/kubernetes");
const seedFiles = [
  "namespace.yaml",
  "tokenmgr/service.yaml",
  "tokenmgr/deployment.yaml",
  "daemonset/configmap.yaml",
  "daemonset/persistentVolume.yaml",
  "daemonset/persistentVolumeClaim.yaml",
  "daemonset/daemonset.yaml",
];

function kustomize(dir) {
  return execFileSync("kubectl", ["kustomize", dir], { encoding: "utf8" });
}

function renderWithComponents(components) {
  const dir = mkdtempSync(join(tmpdir(), "k8s-validate-"));
  try {
    writeFileSync(join(dir, "kustomization.yaml"), [
      "apiVersion: kustomize.config.k8s.io/v1beta1",
      "kind: Kustomization",
      `resources: [${relative(dir, examples)}]`,
      `components: [${components.map((c) => relative(dir, join(examples, c))).join(", ")}]`,
      "",
    ].join("\n"));
    return kustomize(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function validRendered(text) {
  const { objects, errors } = await validateYaml(text);
  assert.deepEqual(errors, []);
  return objects;
}

const byKind = (objects, kind, name) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name);

const base = parseYamlStream(kustomize(examples)).objects;
const tokenmgr = byKind(base, "Deployment", "tokenmgr");
const daemonset = byKind(base, "DaemonSet", "flexdirect");

test("kustomize renders every seed path plus the state PVC", () => {
  const kinds = base.map((o) => `${o.kind}/${o.metadata.name}`).sort();
  assert.deepEqual(kinds, [
    "ConfigMap/flexdirect-conf", "DaemonSet/flexdirect", "Deployment/tokenmgr",
    "Namespace/bitfusion", "PersistentVolume/flexdirect-licenses",
    "PersistentVolumeClaim/flexdirect-licenses", "PersistentVolumeClaim/tokenmgr-state",
    "Service/tokenmgr",
  ]);
  for (const o of base) {
    if (!["Namespace", "PersistentVolume"].includes(o.kind)) {
      assert.equal(o.metadata.namespace, "bitfusion", `${o.kind} namespace`);
    }
  }
});

test("rendered objects match the OpenAPI schemas with no unknown fields", async () => {
  await validRendered(kustomize(examples));
});

test("rendered objects with the auth component match the schemas", async () => {
  const objects = await validRendered(renderWithComponents(["components/auth"]));
  const env = (o) => o.spec.template.spec.containers[0].env.map((e) => e.name);
  assert.ok(env(byKind(objects, "Deployment", "tokenmgr")).includes("AUTH_TOKEN_FILE"));
  assert.ok(env(byKind(objects, "DaemonSet", "flexdirect")).includes("TOKENMGR_AUTH_TOKEN_FILE"));
});

test("the etcd-ha component, alone and with its TLS component, matches the schemas", async () => {
  const envOf = (objects) => Object.fromEntries(byKind(objects, "Deployment", "tokenmgr")
    .spec.template.spec.containers[0].env.map((e) => [e.name, e.value]));
  const ha = await validRendered(renderWithComponents(["overlays/etcd-ha"]));
  assert.equal(byKind(ha, "Deployment", "tokenmgr").spec.replicas, 3);
  assert.equal(envOf(ha).STORE, "etcd");
  assert.ok(envOf(ha).ETCD_ENDPOINTS.startsWith("http://"));
  assert.equal(envOf(ha).ETCD_CACERT, undefined);

  const tls = await validRendered(renderWithComponents(["overlays/etcd-ha", "overlays/etcd-ha/tls"]));
  const env = envOf(tls);
  assert.equal(env.STORE, "etcd");
  for (const url of env.ETCD_ENDPOINTS.split(",")) assert.ok(url.startsWith("https://"), url);
  const pod = byKind(tls, "Deployment", "tokenmgr").spec.template.spec;
  const mount = pod.containers[0].volumeMounts.find((m) => m.name === "etcd-tls");
  assert.equal(mount.readOnly, true);
  for (const v of ["ETCD_CACERT", "ETCD_CERT", "ETCD_KEY"]) {
    assert.ok(env[v].startsWith(mount.mountPath + "/"), `${v} lies on the Secret mount`);
  }
  const vol = pod.volumes.find((v) => v.name === "etcd-tls");
  assert.equal(vol.secret.secretName, "tokenmgr-etcd-tls");
  assert.ok(pod.securityContext.fsGroup > 0, "the non-root user reads the 0440 files via fsGroup");
});

test("each seed file validates on its own (kubectl apply -f file by file)", async () => {
  for (const f of seedFiles) {
    const { objects, errors } = await validateYaml(readFileSync(join(examples, f), "utf8"));
    assert.deepEqual(errors, [], f);
    assert.equal(objects.length, 1, f);
  }
});

for (const [what, workload] of [["tokenmgr", tokenmgr], ["flexdirect", daemonset]]) {
  test(`${what} has probes, requests and limits, and a minimal security context`, () => {
    const pod = workload.spec.template.spec;
    assert.equal(pod.automountServiceAccountToken, false);
    assert.equal(pod.securityContext.seccompProfile.type, "RuntimeDefault");
    assert.equal(pod.containers.length, 1);
    const c = pod.containers[0];
    assert.equal(c.livenessProbe.httpGet.path, "/healthz");
    assert.equal(c.readinessProbe.httpGet.path, "/readyz");
    const portNames = c.ports.map((p) => p.name);
    assert.ok(portNames.includes(c.livenessProbe.httpGet.port), "probe uses a named port");
    for (const r of ["cpu", "memory"]) assert.ok(c.resources.requests[r], `request ${r}`);
    assert.ok(c.resources.limits.memory, "memory limit");
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(c.securityContext.capabilities.drop, ["ALL"]);
    assert.equal(c.securityContext.capabilities.add, undefined);
    assert.equal(c.securityContext.privileged, undefined);
  });
}

test("tokenmgr: one non-root replica, Recreate, state file on its PVC", () => {
  assert.equal(tokenmgr.spec.replicas, 1);
  assert.equal(tokenmgr.spec.strategy.type, "Recreate");
  const pod = tokenmgr.spec.template.spec;
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.ok(pod.securityContext.runAsUser > 0);
  const c = pod.containers[0];
  assert.equal(c.image, "tokenmgr:1.0.0");
  const env = Object.fromEntries(c.env.map((e) => [e.name, e.value]));
  const stateMount = c.volumeMounts.find((m) => env.STATE_FILE.startsWith(m.mountPath + "/"));
  assert.ok(stateMount, "STATE_FILE lies on a mounted volume");
  const vol = pod.volumes.find((v) => v.name === stateMount.name);
  assert.equal(vol.persistentVolumeClaim.claimName, "tokenmgr-state");
  assert.ok(byKind(base, "PersistentVolumeClaim", "tokenmgr-state"));
});

test("service targets tokenmgr's named port and matches the holders' TOKENMGR_URL", () => {
  const svc = byKind(base, "Service", "tokenmgr");
  const c = tokenmgr.spec.template.spec.containers[0];
  assert.ok(c.ports.some((p) => p.name === svc.spec.ports[0].targetPort));
  for (const [k, v] of Object.entries(svc.spec.selector)) {
    assert.equal(tokenmgr.spec.template.metadata.labels[k], v);
  }
  const url = new URL(byKind(base, "ConfigMap", "flexdirect-conf").data.TOKENMGR_URL);
  assert.equal(url.hostname, `${svc.metadata.name}.${svc.metadata.namespace}`);
  assert.equal(Number(url.port), svc.spec.ports[0].port);
  assert.equal(url.pathname, "/api/token");
});

test("configmap keeps the seed's keys", () => {
  const data = byKind(base, "ConfigMap", "flexdirect-conf").data;
  assert.equal(data.GPUTYPES, "K80_servers M60_servers v100_servers");
  for (const group of data.GPUTYPES.split(" ")) {
    for (const n of [1, 2, 3]) assert.match(data[`${group}_${n}`], /^[0-9.]+:[0-9]+$/);
  }
});

test("daemonset: node identity, pool at /mnt, hostPath, workers only, GPU taints, rolling", () => {
  assert.equal(daemonset.spec.updateStrategy.type, "RollingUpdate");
  const pod = daemonset.spec.template.spec;
  const c = pod.containers[0];
  assert.equal(c.image, "flexdirect:1.0.0");
  assert.deepEqual(c.command, ["/license-holder"]);
  assert.equal(c.envFrom[0].configMapRef.name, "flexdirect-conf");
  const env = Object.fromEntries(c.env.map((e) => [e.name, e]));
  assert.equal(env.NODE_NAME.valueFrom.fieldRef.fieldPath, "spec.nodeName");
  assert.equal(env.POD_NAME.valueFrom.fieldRef.fieldPath, "metadata.name");
  const mounts = Object.fromEntries(c.volumeMounts.map((m) => [m.mountPath, m.name]));
  const vols = Object.fromEntries(pod.volumes.map((v) => [v.name, v]));
  assert.equal(vols[mounts["/mnt"]].persistentVolumeClaim.claimName, "flexdirect-licenses");
  assert.deepEqual(vols[mounts["/etc/bitfusionio"]].hostPath,
                   { path: "/etc/bitfusionio", type: "DirectoryOrCreate" });
  const terms = pod.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution
    .nodeSelectorTerms;
  assert.ok(terms.every((t) => t.matchExpressions.some(
    (e) => e.key === "node-role.kubernetes.io/master" && e.operator === "DoesNotExist")));
  assert.ok(pod.tolerations.some((t) => t.key === "nvidia.com/gpu" && t.operator === "Exists"));
  assert.ok(pod.terminationGracePeriodSeconds >= 5, "room for the 2 s SIGTERM exit");
});

test("license pool: NFS, ReadWriteMany, retained, bound statically", () => {
  const pv = byKind(base, "PersistentVolume", "flexdirect-licenses");
  const pvc = byKind(base, "PersistentVolumeClaim", "flexdirect-licenses");
  assert.deepEqual(pv.spec.accessModes, ["ReadWriteMany"]);
  assert.deepEqual(pvc.spec.accessModes, ["ReadWriteMany"]);
  assert.ok(pv.spec.nfs.server && pv.spec.nfs.path);
  assert.equal(pv.spec.persistentVolumeReclaimPolicy, "Retain");
  assert.equal(pvc.spec.storageClassName, "");
  assert.equal(pvc.spec.volumeName, pv.metadata.name);
  assert.deepEqual(pv.spec.claimRef, { namespace: pvc.metadata.namespace, name: pvc.metadata.name });
});

test("validator rejects wrong types", async () => {
  const d = structuredClone(tokenmgr);
  d.spec.replicas = "1";
  const errors = await validateObject(d);
  assert.ok(errors.some((e) => e.includes("/spec/replicas must be integer")), errors.join("\n"));
});

test("validator rejects unknown fields at any depth", async () => {
  const d = structuredClone(daemonset);
  d.spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem = true;
  d.spec.updateStrategy.maxUnavailable = 1;
  const errors = await validateObject(d);
  assert.ok(errors.some((e) => e.includes('unknown field "readOnlyRootFileSystem"')));
  assert.ok(errors.some((e) => e.includes('/spec/updateStrategy: unknown field "maxUnavailable"')));
});

test("validator accepts free-form maps (labels, data, resources)", async () => {
  const cm = structuredClone(byKind(base, "ConfigMap", "flexdirect-conf"));
  cm.data.ANY_NEW_KEY = "x";
  cm.metadata.labels["example.com/any"] = "y";
  assert.deepEqual(await validateObject(cm), []);
});

test("validator rejects unknown kinds and bad enum values", async () => {
  assert.match((await validateObject({ apiVersion: "v1", kind: "Nope", metadata: {} }))[0],
               /unknown apiVersion\/kind/);
  const d = structuredClone(tokenmgr);
  d.spec.template.spec.containers[0].imagePullPolicy = "Sometimes";
  assert.ok((await validateObject(d)).some((e) => e.includes("imagePullPolicy")));
});

// --- examples/kind: the kind cluster config and its overlay (docs/operations.md, "Try it on kind").
// kind itself cannot run here: its config is checked against a hand-written schema of kind's
// v1alpha4 types (kind-cluster-v1alpha4.schema.json), and the overlay against the Kubernetes schemas.
const kindDir = resolve(here, "../../examples/kind");
const kindSchema = JSON.parse(readFileSync(join(here, "kind-cluster-v1alpha4.schema.json"), "utf8"));
const validateKind = new Ajv({ allErrors: true, strict: true }).compile(kindSchema);
const kindConfig = () => {
  const { objects, errors } = parseYamlStream(readFileSync(join(kindDir, "kind-multi-node.yaml"), "utf8"));
  assert.deepEqual(errors, []);
  assert.equal(objects.length, 1);
  return objects[0];
};
const kindErrors = (config) =>
  validateKind(config) ? [] : validateKind.errors.map((e) => `${e.instancePath} ${e.message}`);

test("kind config matches kind's v1alpha4 Cluster schema", () => {
  assert.deepEqual(kindErrors(kindConfig()), []);
});

test("kind config: one control plane and two workers sharing one pool directory", () => {
  const nodes = kindConfig().nodes;
  assert.deepEqual(nodes.map((n) => n.role), ["control-plane", "worker", "worker"]);
  const workers = nodes.filter((n) => n.role === "worker");
  const mounts = workers.map((n) => n.extraMounts);
  for (const m of mounts) assert.equal(m.length, 1);
  assert.deepEqual(mounts[0], mounts[1], "both workers mount the same host directory at one path");
  assert.ok(mounts[0][0].hostPath.startsWith("/"), "absolute: kind resolves relative paths from the cwd");
  assert.notEqual(mounts[0][0].readOnly, true, "holders write their claims into the pool");
});

test("kind overlay: the license volume is the workers' shared mount; the rest validates", async () => {
  const objects = await validRendered(kustomize(kindDir));
  const pv = byKind(objects, "PersistentVolume", "flexdirect-licenses");
  const mount = kindConfig().nodes.find((n) => n.role === "worker").extraMounts[0];
  assert.equal(pv.spec.nfs, undefined);
  assert.deepEqual(pv.spec.hostPath, { path: mount.containerPath, type: "Directory" });
  assert.deepEqual(pv.spec.accessModes, ["ReadWriteMany"]);
  const kinds = (list) => list.map((o) => `${o.kind}/${o.metadata.name}`).sort();
  assert.deepEqual(kinds(objects), kinds(base), "same objects as examples/kubernetes");
  // The DaemonSet must stay off kind's control plane (which has no pool mount).
  const ds = byKind(objects, "DaemonSet", "flexdirect").spec.template.spec;
  assert.ok(ds.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms
    .every((t) => t.matchExpressions.some(
      (e) => e.key === "node-role.kubernetes.io/control-plane" && e.operator === "DoesNotExist")));
});

test("kind schema rejects what kind would refuse", () => {
  const bad = {
    "old apiVersion": (c) => { c.apiVersion = "kind.sigs.k8s.io/v1alpha3"; },
    "unknown node field": (c) => { c.nodes[1].extraMount = c.nodes[1].extraMounts; },
    "unknown mount field": (c) => { c.nodes[1].extraMounts[0].readonly = true; },
    "bad role": (c) => { c.nodes[0].role = "master"; },
    "bad propagation": (c) => { c.nodes[1].extraMounts[0].propagation = "shared"; },
    "mount without hostPath": (c) => { delete c.nodes[2].extraMounts[0].hostPath; },
    "relative containerPath": (c) => { c.nodes[2].extraMounts[0].containerPath = "srv/pool"; },
    "unknown top-level field": (c) => { c.workers = 2; },
  };
  for (const [what, mutate] of Object.entries(bad)) {
    const c = kindConfig();
    mutate(c);
    assert.notDeepEqual(kindErrors(c), [], what);
  }
});

// --- components/monitoring: ServiceMonitor, PodMonitor and PrometheusRule against the Prometheus
// operator's CRD schemas; the alerts themselves are tested by tests/prometheus/run.sh.
test("the monitoring component matches the Prometheus operator's schemas", async () => {
  const objects = await validRendered(renderWithComponents(["components/monitoring"]));
  const rule = byKind(objects, "PrometheusRule", "bitfusion-license-manager");
  assert.ok(rule.spec.groups[0].rules.length >= 8);
  const pm = byKind(objects, "PodMonitor", "flexdirect");
  const ds = byKind(objects, "DaemonSet", "flexdirect");
  const ports = ds.spec.template.spec.containers[0].ports.map((p) => p.name);
  assert.ok(ports.includes(pm.spec.podMetricsEndpoints[0].port), "PodMonitor port is a pod port");
  for (const [k, v] of Object.entries(pm.spec.selector.matchLabels)) {
    assert.equal(ds.spec.template.metadata.labels[k], v, `PodMonitor selects the holders (${k})`);
  }
  const sm = byKind(objects, "ServiceMonitor", "tokenmgr");
  const svc = byKind(objects, "Service", "tokenmgr");
  assert.ok(svc.spec.ports.some((p) => p.name === sm.spec.endpoints[0].port));
  for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) {
    assert.equal(svc.metadata.labels[k], v, `ServiceMonitor selects the Service (${k})`);
  }
});

test("a misspelt field in a monitoring object is an error", async () => {
  const text = renderWithComponents(["components/monitoring"])
    .replace("podMetricsEndpoints:", "podMetricEndpoints:");
  const { errors } = await validateYaml(text);
  assert.ok(errors.some((e) => e.includes("PodMonitor/flexdirect")), errors.join("\n"));
});

// --- components/nfd: the holders write NFD's local-source feature file on the node.
test("the nfd component mounts NFD's features.d and names the file in NFD_FEATURE_FILE", async () => {
  const objects = await validRendered(renderWithComponents(["components/nfd"]));
  const pod = byKind(objects, "DaemonSet", "flexdirect").spec.template.spec;
  const dir = "/etc/kubernetes/node-feature-discovery/features.d";
  const vol = pod.volumes.find((v) => v.name === "nfd-features");
  assert.deepEqual(vol.hostPath, { path: dir, type: "DirectoryOrCreate" });
  const c = pod.containers[0];
  const mount = c.volumeMounts.find((m) => m.name === "nfd-features");
  assert.equal(mount.mountPath, dir);
  assert.notEqual(mount.readOnly, true, "the holder writes and removes the file");
  const file = c.env.find((e) => e.name === "NFD_FEATURE_FILE").value;
  assert.equal(dirname(file), mount.mountPath, "the file lies on the mount");
  assert.ok(!file.split("/").pop().startsWith("."), "NFD ignores dot files");
  // The rest of the DaemonSet is untouched: the license mounts and env are still there.
  for (const name of ["licenses", "host-license"]) {
    assert.ok(c.volumeMounts.some((m) => m.name === name), name);
  }
  assert.ok(c.env.some((e) => e.name === "NODE_NAME"));
  // And it composes with the other components.
  await validRendered(renderWithComponents(["components/auth", "components/monitoring",
                                            "components/nfd"]));
});
